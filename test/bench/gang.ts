/**
 * Part of `npm run bench:controlplane`: the gang policies side by side on multi-pod groups
 * (TP=4 as 2 pods x 2 GPUs in one NVLink clique): time from the create request to
 * status.readyReplicas for 1 and for 50 groups, and the operator's API writes per group.
 * Kueue runs with a ClusterQueue whose GPU quota covers the whole cluster and topology-aware
 * scheduling over the cliques; PodGroup uses the kube-scheduler's gang scheduling.
 */
import type { GangPolicy } from '../../operator/src/api/types.js';
import type { LocalCluster } from '../cluster/local-cluster.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { ensureKueue, KUEUE_MANAGED_LABEL } from '../cluster/kueue.js';
import type { E2eContext } from '../e2e/fixture.js';
import { kueueApi, GPU } from '../e2e/gang-harness.js';
import { createBd, kubectl, multiPodSpec, testDeployment } from '../e2e/operator-harness.js';
import { bdReached, breakdown, deleteDeployment, log, median, operatorWrites, sec, sleep } from './common.js';

export const GANG_POLICIES: readonly GangPolicy[] = ['SchedulingGates', 'Kueue', 'PodGroup'];
const SHAPE = multiPodSpec(4, 2);
const PODS_PER_GROUP = 2;

interface GangRun { policy: GangPolicy; groups: number; readyMs: number; writesPerGroup: number; writeKinds: string; recreated: number }

/** Kueue on the bench cluster, managing `ctx.namespace` through LocalQueue `bench` (quota: every GPU; TAS over the cliques). */
async function kueueQueue(cluster: LocalCluster, ctx: E2eContext, gpus: number): Promise<void> {
  await ensureKueue(cluster, (l) => log(`[kueue] ${l}`));
  await kubectl(cluster, 'label', 'namespace', ctx.namespace, `${KUEUE_MANAGED_LABEL}=true`, '--overwrite');
  const k = kueueApi(ctx);
  await k.createCluster('topologies', { kind: 'Topology', metadata: { name: 'bench-cliques' }, spec: { levels: [{ nodeLabel: NVLINK_DOMAIN_LABEL }] } });
  await k.createCluster('resourceflavors', { kind: 'ResourceFlavor', metadata: { name: 'bench-gpu' }, spec: { nodeLabels: { type: 'kwok' }, topologyName: 'bench-cliques' } });
  await k.createCluster('clusterqueues', { kind: 'ClusterQueue', metadata: { name: 'bench' }, spec: { namespaceSelector: {}, resourceGroups: [{ coveredResources: [GPU], flavors: [{ name: 'bench-gpu', resources: [{ name: GPU, nominalQuota: gpus }] }] }] } });
  await k.create('localqueues', { kind: 'LocalQueue', metadata: { name: 'bench' }, spec: { clusterQueue: 'bench' } });
}

async function timeRun(ctx: E2eContext, policy: GangPolicy, name: string, groups: number): Promise<GangRun> {
  const gang = policy === 'Kueue' ? { policy, queueName: 'bench' } : { policy };
  const t0 = Date.now();
  const status = bdReached(ctx, name, (b) => b.status?.readyReplicas === groups, 600_000);
  await createBd(ctx, testDeployment(name, { replicas: groups, ...SHAPE, gang }));
  const { at, bd } = await status;
  await sleep(1000);
  const writes = operatorWrites(ctx, t0);
  const recreated = (bd.status?.groups ?? []).reduce((n, g) => n + g.restarts + (g.disruptions ?? 0), 0);
  return { policy, groups, readyMs: at - t0, writesPerGroup: writes.length / groups, writeKinds: breakdown(writes).map((b) => `${(b.count / groups).toFixed(1)} ${b.key}`).join(', '), recreated };
}

/** Runs every policy: `singleRuns` x 1 group, then one fleet of `fleetGroups`; returns the markdown section. */
export async function benchGangPolicies(cluster: LocalCluster, ctx: E2eContext, nodes: number, singleRuns: number, fleetGroups: number): Promise<string> {
  await kueueQueue(cluster, ctx, nodes * 8);
  const runs: GangRun[] = [];
  for (const policy of GANG_POLICIES) {
    for (let i = 1; i <= singleRuns; i++) {
      const r = await timeRun(ctx, policy, `gang-${policy.toLowerCase()}-${i}`, 1);
      runs.push(r);
      await deleteDeployment(ctx, `gang-${policy.toLowerCase()}-${i}`);
    }
    const r = await timeRun(ctx, policy, `gang-${policy.toLowerCase()}-fleet`, fleetGroups);
    runs.push(r);
    log(`${policy}: ${fleetGroups} groups ready in ${sec(r.readyMs)} s, ${r.writesPerGroup.toFixed(1)} writes per group`);
    await deleteDeployment(ctx, `gang-${policy.toLowerCase()}-fleet`);
  }
  const of = (policy: GangPolicy, groups: number) => runs.filter((r) => r.policy === policy && r.groups === groups);
  const cell = (rs: GangRun[]) => `${sec(median(rs.map((r) => r.readyMs)))} (${sec(Math.min(...rs.map((r) => r.readyMs)))}–${sec(Math.max(...rs.map((r) => r.readyMs)))})`;
  const rows = GANG_POLICIES.map((p) => {
    const [one, fleet] = [of(p, 1), of(p, fleetGroups)];
    return `| ${p} | ${cell(one)} | ${cell(fleet)} | ${median(one.map((r) => r.writesPerGroup)).toFixed(1)} | ${fleet[0]!.writesPerGroup.toFixed(1)} | ${fleet[0]!.recreated} |`;
  });
  const kinds = GANG_POLICIES.map((p) => `- ${p}, ${fleetGroups} groups: ${of(p, fleetGroups)[0]!.writeKinds}`);
  return `### Gang policies: multi-pod groups (TP=4 as ${PODS_PER_GROUP} pods x 2 GPUs in one \`${NVLINK_DOMAIN_LABEL}\`)

Create request to \`status.readyReplicas\` = groups, seconds (median (min–max) of ${singleRuns} runs for 1 group; one run for ${fleetGroups} groups, ${fleetGroups * PODS_PER_GROUP} pods on ${nodes} nodes);
operator API writes per group (audit log). Kueue: one ClusterQueue with quota for every GPU, topology-aware scheduling over the cliques (Topology level: the clique); PodGroup: Kubernetes' gang scheduling with a topology constraint.

| policy | 1 group | ${fleetGroups} groups | writes per group (1 group) | writes per group (${fleetGroups} groups) | groups recreated (${fleetGroups}) |
|---|---:|---:|---:|---:|---:|
${rows.join('\n')}

Writes per group by kind:
${kinds.join('\n')}
`;
}
