/** Helpers of the operator e2e tests: install the CRD, run the real operator binary, apply and watch BloomDeployments. */
import { execFile } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import type { BloomDeployment, BloomDeploymentManifest } from '../../operator/src/api/types.js';
import { LABELS, selectorString } from '../../operator/src/groups/labels.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import type { LocalCluster } from '../cluster/local-cluster.js';
import type { ClientName } from '../cluster/pki.js';
import { repoRoot, toolPath } from '../cluster/paths.js';
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from '../cluster/processes.js';
import { waitCrdsEstablished } from '../cluster/crds.js';
import type { E2eContext } from './fixture.js';

const run = promisify(execFile);

/**
 * Applies the generated CRDs from crds/ with kubectl (as a user would; client-node's typed
 * serializer would drop the x-kubernetes-* extensions) and waits until they are Established.
 */
export async function installCrd(cluster: LocalCluster): Promise<void> {
  await kubectl(cluster, 'apply', '--server-side', '--force-conflicts', '-f', join(repoRoot(), 'crds'));
  await waitCrdsEstablished((...args) => kubectl(cluster, ...args));
}

export interface OperatorProcess {
  process: ManagedProcess;
  metricsUrl: string;
  logFile: string;
  /** Resolves with the exit code once the process exits (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGTERM (graceful: releases its lease), SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** SIGKILL at once, as a crash would. */
  kill(): Promise<void>;
}

export interface OperatorOptions {
  client?: ClientName;
  kubeconfig?: string;
  extraArgs?: string[];
  name?: string;
  /** Wait until /readyz passes (default); false returns once it is started (a leader that cannot sync is never ready). */
  waitReady?: boolean;
}

/** Starts `bloom-operator run` (the real CLI) as its own process and waits until it reports ready. */
export async function startOperator(cluster: LocalCluster, options: OperatorOptions = {}): Promise<OperatorProcess> {
  const port = await freePort();
  const logFile = join(cluster.logDir, `${options.name ?? 'operator'}-${port}.log`);
  closeSync(openSync(logFile, 'a'));
  const kubeconfig = options.kubeconfig ?? cluster.kubeconfigFor(options.client ?? 'operator');
  // the flags and MALLOC_ARENA_MAX of images/operator/Dockerfile, so tests and benchmarks run what the image runs
  const args = ['--max-semi-space-size=2', join(repoRoot(), 'dist', 'operator', 'src', 'cli', 'main.js'), 'run', '--kubeconfig', kubeconfig,
    '--metrics-port', String(port), '--health-port', String(port), '--bind-address', '127.0.0.1', '--log-level', 'info', ...(options.extraArgs ?? [])];
  let proc!: ManagedProcess;
  const env = { ...process.env, MALLOC_ARENA_MAX: '2' };
  const exited = new Promise<number | null>((resolve) => { proc = startProcess(options.name ?? 'bloom-operator', process.execPath, args, logFile, env, resolve); });
  const metricsUrl = `http://127.0.0.1:${port}`;
  if (options.waitReady ?? true) await waitFor(`operator ready (log ${logFile})`, async () => (await fetch(`${metricsUrl}/readyz`)).ok, 60_000, 200);
  return { process: proc, metricsUrl, logFile, exited, stop: () => stopProcess(proc), kill: () => stopProcess(proc, 0) };
}

export interface OperatorHandle {
  /** The running operator. */
  readonly current: OperatorProcess;
  /** Stops it (SIGTERM), waits pauseMs, and starts a fresh one. */
  restart(pauseMs?: number): Promise<void>;
}

/**
 * Hooks for a describe block: install the CRD, run one operator watching the block's namespace, stop it afterwards.
 * `kubeconfig` (called once the cluster is up) points the operator elsewhere, e.g. at a fault proxy.
 */
export function useOperator(ctx: E2eContext, options: { kubeconfig?: () => Promise<string> } = {}): OperatorHandle {
  let current: OperatorProcess | undefined;
  let kubeconfig: string | undefined;
  const start = () => startOperator(ctx.cluster, { extraArgs: ['--namespace', ctx.namespace], ...(kubeconfig ? { kubeconfig } : {}) });
  before(async () => {
    await installCrd(ctx.cluster);
    kubeconfig = await options.kubeconfig?.();
    current = await start();
  });
  after(async () => current?.stop());
  return {
    get current() { return current!; },
    async restart(pauseMs = 0) {
      await current?.stop();
      await new Promise((r) => setTimeout(r, pauseMs));
      current = await start();
    },
  };
}

export function customObjects(kc: KubeConfig): CustomObjectsApi {
  return kc.makeApiClient(CustomObjectsApi);
}

export async function createBd(ctx: E2eContext, manifest: BloomDeploymentManifest): Promise<BloomDeployment> {
  return (await customObjects(ctx.kc).createNamespacedCustomObject({
    group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL,
    body: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'BloomDeployment', ...manifest, metadata: { ...manifest.metadata, namespace: ctx.namespace } },
  })) as BloomDeployment;
}

export async function getBd(ctx: E2eContext, name: string): Promise<BloomDeployment> {
  return (await customObjects(ctx.kc).getNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name })) as BloomDeployment;
}

export async function waitForBd(ctx: E2eContext, name: string, what: string, predicate: (bd: BloomDeployment) => boolean, timeoutMs = 120_000): Promise<BloomDeployment> {
  let last: BloomDeployment | undefined;
  try {
    await waitFor(`${name}: ${what}`, async () => predicate((last = await getBd(ctx, name))), timeoutMs, 250);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}`);
  }
  return last!;
}

export async function podsOf(ctx: E2eContext, bd: string, extra: Record<string, string> = {}): Promise<V1Pod[]> {
  const list = await ctx.core.listNamespacedPod({ namespace: ctx.namespace, labelSelector: selectorString({ [LABELS.deployment]: bd, ...extra }) });
  return list.items;
}

export const envOf = (pod: V1Pod): Record<string, string> =>
  Object.fromEntries((pod.spec?.containers?.[0]?.env ?? []).map((e) => [e.name, e.value ?? '']));

/** Runs the real kubectl against the cluster's admin kubeconfig. */
export async function kubectl(cluster: LocalCluster, ...args: string[]): Promise<string> {
  const { stdout } = await run(toolPath('kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args]);
  return stdout;
}

/**
 * Spec fields of a group of several pods (tp / gpusPerPod pods of gpusPerPod GPUs), packed into one
 * NVLink clique of the fake cluster (its pods run on distinct nodes).
 */
export function multiPodSpec(tensorParallelSize: number, gpusPerPod: number, placement: Record<string, unknown> = {}): Record<string, unknown> {
  return { tensorParallelSize, gpusPerPod, placement: { topologyKey: NVLINK_DOMAIN_LABEL, ...placement } };
}

/** A small TP deployment that kwok can run: any image (kwok starts no containers), a hostPath model. */
export function testDeployment(name: string, spec: Record<string, unknown> = {}): BloomDeploymentManifest {
  return {
    metadata: { name },
    spec: {
      replicas: 1,
      tensorParallelSize: 8,
      model: { source: { hostPath: { path: '/models/bloom-176b-int8' } } },
      worker: { image: 'ghcr.io/bloom-operator/worker:test' },
      ...spec,
    } as BloomDeploymentManifest['spec'],
  };
}

/** The value of the series `name` whose labels include `labels`, from an operator's /metrics (undefined if absent). */
export async function metricValue(operator: OperatorProcess, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[4]);
  }
  return undefined;
}
