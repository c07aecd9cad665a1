/**
 * Helpers of the gang-admission e2e tests (Kueue, PodGroup, SchedulingGates): foreign GPU pods on
 * chosen nodes, Kueue's objects, and the placement every policy must give a group.
 */
import assert from 'node:assert/strict';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { LABELS } from '../../operator/src/groups/labels.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { waitFor } from '../cluster/processes.js';
import type { E2eContext } from './fixture.js';
import { createBd, kubectl, multiPodSpec, podsOf, testDeployment, waitForBd } from './operator-harness.js';

export const GPU = 'nvidia.com/gpu';
const KUEUE_API = { group: 'kueue.x-k8s.io', version: 'v1beta2' } as const;

/** A plain pod (no operator, no queue) holding `gpus` GPUs on `node`; resolves once it is bound. */
export async function occupy(ctx: E2eContext, node: string, gpus: number): Promise<void> {
  const name = `foreign-${node}`;
  await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: {
    metadata: { name, labels: { app: 'foreign' } },
    spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'c', image: 'foreign:1', resources: { limits: { [GPU]: String(gpus) } } }] },
  } });
  await waitFor(`${name} bound`, async () => Boolean((await ctx.core.readNamespacedPod({ name, namespace: ctx.namespace })).spec?.nodeName), 30_000);
}

/** Deletes the foreign pods of the namespace; resolves once they are gone. */
export async function removeForeign(ctx: E2eContext): Promise<void> {
  await ctx.core.deleteCollectionNamespacedPod({ namespace: ctx.namespace, labelSelector: 'app=foreign', gracePeriodSeconds: 0 });
  await waitFor('the foreign pods gone', async () => (await ctx.core.listNamespacedPod({ namespace: ctx.namespace, labelSelector: 'app=foreign' })).items.length === 0, 60_000);
}

/** Node name -> its NVLink clique. */
export async function cliqueOfNodes(ctx: E2eContext): Promise<Map<string, string>> {
  return new Map((await ctx.core.listNode()).items.map((n) => [n.metadata!.name!, n.metadata!.labels![NVLINK_DOMAIN_LABEL]!]));
}

/** The pods of each group index of a deployment (current pods only: none terminating). */
export async function podsByGroup(ctx: E2eContext, bd: string): Promise<Map<string, V1Pod[]>> {
  const byGroup = new Map<string, V1Pod[]>();
  for (const pod of await podsOf(ctx, bd)) {
    if (pod.metadata?.deletionTimestamp) continue;
    const g = pod.metadata?.labels?.[LABELS.group] ?? '';
    byGroup.set(g, [...(byGroup.get(g) ?? []), pod]);
  }
  return byGroup;
}

/** Every bound group of the deployment sits inside one clique, one pod per node. */
export async function assertGroupsInOneClique(ctx: E2eContext, bd: string, groups: number): Promise<void> {
  const cliques = await cliqueOfNodes(ctx);
  const byGroup = await podsByGroup(ctx, bd);
  assert.equal(byGroup.size, groups, `${bd}: ${groups} groups`);
  for (const [g, pods] of byGroup) {
    const nodes = pods.map((p) => p.spec?.nodeName);
    assert.ok(nodes.every(Boolean), `${bd} group ${g}: every pod bound (${nodes.join(', ')})`);
    assert.equal(new Set(nodes).size, pods.length, `${bd} group ${g}: one pod per node`);
    assert.equal(new Set(nodes.map((n) => cliques.get(n!))).size, 1, `${bd} group ${g}: inside one clique (${nodes.join(', ')})`);
  }
}

export function kueueApi(ctx: E2eContext) {
  const custom = ctx.kc.makeApiClient(CustomObjectsApi);
  const { group, version } = KUEUE_API;
  return {
    createCluster: (plural: string, body: object) => custom.createClusterCustomObject({ group, version, plural, body: { apiVersion: `${group}/${version}`, ...body } }),
    deleteCluster: (plural: string, name: string) => custom.deleteClusterCustomObject({ group, version, plural, name }).catch(() => {}),
    patchCluster: (plural: string, name: string, body: object) => custom.patchClusterCustomObject({ group, version, plural, name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    create: (plural: string, body: object) => custom.createNamespacedCustomObject({ group, version, plural, namespace: ctx.namespace, body: { apiVersion: `${group}/${version}`, ...body } }),
    workloads: async () => ((await custom.listNamespacedCustomObject({ group, version, plural: 'workloads', namespace: ctx.namespace })) as { items: KueueWorkload[] }).items,
  };
}

export interface KueueWorkload {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { podSets: Array<{ name: string; count: number }> };
  status?: { admission?: unknown; conditions?: Array<{ type: string; status: string }> };
}

export const isAdmitted = (w: KueueWorkload) => (w.status?.conditions ?? []).some((c) => c.type === 'Admitted' && c.status === 'True');

/** The nodes of the fourth clique, filled by foreign pods in the exact-fit scenario. */
const EXACT_FIT_FOREIGN = ['gpu-node-6', 'gpu-node-7'];

/**
 * Many deployments at once on an exact fit (the cluster-scale issue, scaled to the 8-node test cluster):
 * the fourth clique is full of foreign pods and 6 deployments of 2 groups of 2 pods x 2 GPUs are applied
 * at the same moment, 48 GPUs for the 48 left in three cliques. Every group must be Ready at epoch 1,
 * recreated never (no stall, no restart), whole inside one clique; then everything is deleted.
 */
export async function exactFitAtOnce(ctx: E2eContext, gang: Record<string, unknown>, prefix: string): Promise<void> {
  await removeForeign(ctx);
  for (const node of EXACT_FIT_FOREIGN) await occupy(ctx, node, 8);
  const names = Array.from({ length: 6 }, (_, i) => `${prefix}${i}`);
  const spec = { replicas: 2, ...multiPodSpec(4, 2), gang, failurePolicy: { placementTimeoutSeconds: 3600 } };
  await Promise.all(names.map((name) => createBd(ctx, testDeployment(name, spec))));
  const ready = await Promise.all(names.map((name) => waitForBd(ctx, name, '2 groups ready', (b) => b.status?.readyReplicas === 2, 180_000)));
  const groups = ready.flatMap((b) => (b.status?.groups ?? []).map((g) => `${b.metadata.name}/${g.index}: epoch ${g.epoch}, ${g.restarts} restarts, ${g.disruptions ?? 0} disruptions`));
  assert.deepEqual(groups.filter((g) => !g.endsWith('epoch 1, 0 restarts, 0 disruptions')), [], 'every group Ready at epoch 1, never recreated');
  for (const name of names) await assertGroupsInOneClique(ctx, name, 2);
  for (const name of names) await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'bd', name, '--wait=false');
  await waitFor('the exact-fit groups gone', async () => (await Promise.all(names.map((n) => podsOf(ctx, n)))).every((p) => p.length === 0), 120_000);
  await removeForeign(ctx);
}
