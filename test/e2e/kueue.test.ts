import assert from 'node:assert/strict';
import { KUEUE } from '../../operator/src/groups/gang.js';
import { GANG_SCHEDULING_GATE } from '../../operator/src/groups/pod.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { CLIENTS } from '../cluster/pki.js';
import { ensureKueue, KUEUE_MANAGED_LABEL } from '../cluster/kueue.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { waitFor } from '../cluster/processes.js';
import { writesBy } from './audit.js';
import { useE2e } from './fixture.js';
import { assertGroupsInOneClique, exactFitAtOnce, GPU, isAdmitted, kueueApi, occupy, podsByGroup } from './gang-harness.js';
import { createBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Kueue admits groups of 2 pods x 4 GPUs (TP=8) whole, against a ClusterQueue's GPU quota; the operator only labels them. */
describe('gang policy Kueue: admission by quota, topology-aware placement, re-admission on restart', function () {
  const ctx = useE2e('kueue');
  useOperator(ctx);
  const names = { flavor: '', topology: '', queue: '', tasQueue: '' };
  let started = 0;

  before(async function () {
    this.timeout(300_000);
    await ensureKueue(ctx.cluster, (l) => console.log(`      [kueue] ${l}`));
    started = Date.now();
    await kubectl(ctx.cluster, 'label', 'namespace', ctx.namespace, `${KUEUE_MANAGED_LABEL}=true`);
    const k = kueueApi(ctx);
    Object.assign(names, { flavor: `gpu-${ctx.namespace}`, topology: `cliques-${ctx.namespace}`, queue: `quota-${ctx.namespace}`, tasQueue: `tas-${ctx.namespace}` });
    const inNamespace = { matchLabels: { 'kubernetes.io/metadata.name': ctx.namespace } };
    // The pods require a topology (podset-required-topology): the flavor must offer topology-aware scheduling.
    // Its lowest level is the clique: Kueue ignores the pods' hostname anti-affinity, so with 4-GPU pods on
    // 8-GPU nodes a hostname level would put both pods of a group on one node; Kueue picks the clique, the
    // kube-scheduler distinct nodes inside it.
    await k.createCluster('topologies', { kind: 'Topology', metadata: { name: names.topology }, spec: { levels: [{ nodeLabel: NVLINK_DOMAIN_LABEL }] } });
    await k.createCluster('resourceflavors', { kind: 'ResourceFlavor', metadata: { name: names.flavor }, spec: { nodeLabels: { type: 'kwok' }, topologyName: names.topology } });
    const clusterQueue = (name: string, flavor: string, gpus: number) => ({
      kind: 'ClusterQueue', metadata: { name },
      spec: { namespaceSelector: inNamespace, resourceGroups: [{ coveredResources: [GPU], flavors: [{ name: flavor, resources: [{ name: GPU, nominalQuota: gpus }] }] }] },
    });
    await k.createCluster('clusterqueues', clusterQueue(names.queue, names.flavor, 16));
    await k.createCluster('clusterqueues', clusterQueue(names.tasQueue, names.flavor, 64));
    await k.create('localqueues', { kind: 'LocalQueue', metadata: { name: 'gpus' }, spec: { clusterQueue: names.queue } });
    await k.create('localqueues', { kind: 'LocalQueue', metadata: { name: 'cliques' }, spec: { clusterQueue: names.tasQueue } });
  });

  after(async () => {
    const k = kueueApi(ctx);
    for (const bd of ['quota', 'tas']) await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'bd', bd, '--ignore-not-found', '--wait=false').catch(() => {});
    await waitFor('the test pods gone', async () => (await podsOf(ctx, 'quota')).length + (await podsOf(ctx, 'tas')).length === 0, 120_000).catch(() => {});
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'localqueues', '--all').catch(() => {});
    for (const q of [names.queue, names.tasQueue]) await k.deleteCluster('clusterqueues', q);
    await k.deleteCluster('resourceflavors', names.flavor);
    await k.deleteCluster('topologies', names.topology);
  });

  it('quota for 2 groups: 3 replicas run 2 groups, the third waits gated by Kueue holding no GPU; more quota admits it', async () => {
    await createBd(ctx, testDeployment('quota', { replicas: 3, ...multiPodSpec(8, 4), gang: { policy: 'Kueue', queueName: 'gpus' } }));
    await waitForBd(ctx, 'quota', '2 groups ready', (b) => b.status?.readyReplicas === 2, 120_000);
    await sleep(5000);
    const groups = await podsByGroup(ctx, 'quota');
    const held = [...groups.values()].filter((pods) => pods.every((p) => !p.spec?.nodeName));
    const running = [...groups.values()].filter((pods) => pods.every((p) => p.spec?.nodeName));
    assert.deepEqual([running.length, held.length], [2, 1], 'two groups bound whole, one held whole');
    for (const pod of held[0]!) {
      const gates = pod.spec?.schedulingGates?.map((g) => g.name) ?? [];
      assert.ok(gates.includes(KUEUE.admissionGate) && gates.every((g) => g.startsWith('kueue.x-k8s.io/')), `${pod.metadata?.name}: held by Kueue's gates alone (${gates.join(', ')})`);
      assert.equal(pod.spec?.affinity?.nodeAffinity, undefined, 'the operator never pins');
    }
    for (const pods of groups.values()) for (const pod of pods) assert.ok(!pod.spec?.schedulingGates?.some((g) => g.name === GANG_SCHEDULING_GATE), 'no operator gate in Kueue mode');
    const workloads = await kueueApi(ctx).workloads();
    assert.equal(workloads.length, 3, 'one Kueue workload per group incarnation');
    assert.equal(workloads.filter(isAdmitted).length, 2);
    assert.ok(workloads.every((w) => w.spec.podSets.length === 1 && w.spec.podSets[0]!.count === 2), 'one pod set of 2 pods per group');
    const bd = await waitForBd(ctx, 'quota', 'the held group Pending', (b) => (b.status?.groups ?? []).filter((g) => g.phase === 'Pending').length === 1);
    assert.equal(bd.status?.readyReplicas, 2);

    await kueueApi(ctx).patchCluster('clusterqueues', names.queue, { spec: { resourceGroups: [{ coveredResources: [GPU], flavors: [{ name: names.flavor, resources: [{ name: GPU, nominalQuota: 24 }] }] }] } });
    await waitForBd(ctx, 'quota', 'the third group admitted and ready', (b) => b.status?.readyReplicas === 3, 120_000);
  });

  it('a group restart re-admits the new incarnation through Kueue, and the operator never lifts Kueue\'s gate', async () => {
    const victim = (await podsByGroup(ctx, 'quota')).get('0')!.find((p) => p.metadata?.labels?.[LABELS.pod] === '1')!;
    assert.equal(victim.metadata?.labels?.[KUEUE.podGroupLabel], 'quota-g0-e1');
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', victim.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true');
    const restarted = await waitForBd(ctx, 'quota', 'group 0 ready again at epoch 2', (b) => {
      const g0 = b.status?.groups?.find((g) => g.index === 0);
      return g0?.epoch === 2 && g0.phase === 'Ready' && b.status?.readyReplicas === 3;
    }, 180_000);
    assert.equal(restarted.status?.groups?.find((g) => g.index === 0)?.restarts, 1);
    const pods = (await podsByGroup(ctx, 'quota')).get('0')!;
    assert.ok(pods.every((p) => p.metadata?.labels?.[KUEUE.podGroupLabel] === 'quota-g0-e2'), 'the new incarnation is a new pod group');
    const workload = (await kueueApi(ctx).workloads()).find((w) => w.metadata.name === 'quota-g0-e2');
    assert.ok(workload && isAdmitted(workload), 'admitted by Kueue, within the quota the old incarnation freed');
    // The operator's only pod patches are its own gate's removal (pods, JSON patch) and the readiness gate
    // (pods/status); in this mode it sends none of the first kind.
    const podPatches = writesBy(ctx.cluster.auditLog, CLIENTS.operator.cn, started)
      .filter((e) => e.verb === 'patch' && e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.objectRef.namespace === ctx.namespace);
    assert.deepEqual(podPatches.map((e) => e.objectRef?.name), [], 'no pod patched (ungated) by the operator');
  });

  it('topology-aware: groups land inside one clique, around foreign pods, never split or stalled', async () => {
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'bd', 'quota', '--wait=false');
    await waitFor('the quota groups gone', async () => (await podsOf(ctx, 'quota')).length === 0, 120_000);
    // Foreign 4-GPU pods on one node of three cliques: those cliques fit one group each, the fourth two.
    for (const node of ['gpu-node-0', 'gpu-node-2', 'gpu-node-4']) await occupy(ctx, node, 4);
    await createBd(ctx, testDeployment('tas', { replicas: 4, ...multiPodSpec(8, 4), gang: { policy: 'Kueue', queueName: 'cliques' }, failurePolicy: { placementTimeoutSeconds: 3600 } }));
    const bd = await waitForBd(ctx, 'tas', '4 groups ready', (b) => b.status?.readyReplicas === 4, 180_000);
    assert.ok((bd.status?.groups ?? []).every((g) => g.restarts === 0 && (g.disruptions ?? 0) === 0), 'no group recreated: none stalled');
    await assertGroupsInOneClique(ctx, 'tas', 4);
    for (const pod of await podsOf(ctx, 'tas')) assert.equal(pod.metadata?.annotations?.[KUEUE.requiredTopologyAnnotation], NVLINK_DOMAIN_LABEL);
  });

  it('6 deployments x 2 multi-pod groups applied at once on an exact fit: every group Ready at epoch 1', async () => {
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'bd', 'tas', '--wait=false');
    await waitFor('the tas groups gone', async () => (await podsOf(ctx, 'tas')).length === 0, 120_000);
    await exactFitAtOnce(ctx, { policy: 'Kueue', queueName: 'cliques' }, 'fit');
  });
});
