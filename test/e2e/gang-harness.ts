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
import { podsOf } from './operator-harness.js';

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

/** Every bound group of the deployment sits inside one clique, one pod per node, and the operator pinned none of its pods. */
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
