import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { LocalCluster } from '../cluster/local-cluster.js';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';

let shared: Promise<LocalCluster> | undefined;

/** The control plane of this test run: started on first use, stopped by the root hook in hooks.ts. */
export function sharedCluster(): Promise<LocalCluster> {
  shared ??= (async () => {
    const dir = process.env.BLOOM_TEST_CLUSTER_DIR ?? join(repoRoot(), '.cluster', 'test');
    const cluster = new LocalCluster(dir);
    await cluster.up({ nodes: Number(process.env.BLOOM_TEST_NODES ?? 8), log: (l) => console.log(`      [cluster] ${l}`) });
    return cluster;
  })();
  return shared;
}

export async function stopSharedCluster(): Promise<void> {
  if (!shared) return;
  const cluster = await shared.catch(() => undefined);
  shared = undefined;
  if (cluster && !process.env.BLOOM_KEEP_CLUSTER) await cluster.down();
}

export interface E2eContext {
  cluster: LocalCluster;
  kc: KubeConfig;
  core: CoreV1Api;
  namespace: string;
}

/**
 * Registers before/after hooks that give a describe block the shared cluster, an admin
 * client and a fresh namespace (deleted afterwards). Use inside `describe`.
 */
export function useE2e(prefix: string): E2eContext {
  const ctx = {} as E2eContext;
  before(async function () {
    this.timeout(30 * 60_000);
    ctx.cluster = await sharedCluster();
    ctx.kc = ctx.cluster.loadKubeConfig();
    ctx.core = ctx.kc.makeApiClient(CoreV1Api);
    ctx.namespace = `${prefix}-${randomBytes(3).toString('hex')}`;
    await ctx.core.createNamespace({ body: { metadata: { name: ctx.namespace } } });
    await waitFor(`ServiceAccount default in ${ctx.namespace}`, async () => {
      await ctx.core.readNamespacedServiceAccount({ name: 'default', namespace: ctx.namespace });
      return true;
    }, 60_000);
  });
  after(async () => {
    if (ctx.core && ctx.namespace) await ctx.core.deleteNamespace({ name: ctx.namespace }).catch(() => {});
  });
  return ctx;
}
