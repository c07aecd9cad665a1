import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { desiredGroupPod } from '../../operator/src/groups/pod.js';
import { podRevision } from '../../operator/src/groups/revision.js';
import { planGroup, type GroupPlanInput } from '../../operator/src/lifecycle/group-plan.js';
import { readRecord, recordAnnotations, type GroupRecord } from '../../operator/src/lifecycle/group-record.js';
import type { NodeView } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const T0 = Date.parse('2026-11-22T12:00:00Z');
// A multi-pod group (TP=8 as 4 pods x 2 GPUs, in one NVLink clique): the gang lifecycle is per pod.
const bd: BloomDeployment = bloomDeployment(8, { gpusPerPod: 2, placement: { topologyKey: 'nvidia.com/gpu.clique' }, failurePolicy: { backoffSeconds: 10, maxBackoffSeconds: 300, maxGroupRestarts: 2 } });
const revision = podRevision(bd.spec);

function record(over: Partial<GroupRecord> = {}): GroupRecord {
  return { index: 0, epoch: 1, revision, epochStarted: T0, restarts: 0, restartTimes: [], disruptions: 0, disruptionTimes: [], ...over };
}

/** The readiness conditions a kubelet reports (a gated pod's own readiness is ContainersReady). */
const readiness = (ready: boolean, at: number) => (['Ready', 'ContainersReady'] as const).map((type) => ({ type, status: ready ? 'True' : 'False', lastTransitionTime: new Date(at) }));

function runningPod(index: number, epoch = 1, over: (p: V1Pod) => void = () => {}, spec: BloomDeployment = bd): V1Pod {
  const pod = desiredGroupPod({ bd: spec, group: 0, pod: index, epoch, revision: podRevision(spec.spec), clusterDomain: CLUSTER_DOMAIN });
  pod.metadata!.uid = `uid-${epoch}-${index}`;
  pod.spec!.schedulingGates = [];
  pod.spec!.nodeName = `gpu-node-${index}`;
  pod.status = { phase: 'Running', conditions: [...readiness(true, T0), { type: 'inference.bloom.dev/group-ready', status: 'True', lastTransitionTime: new Date(T0) }], containerStatuses: [{ name: 'worker', image: 'x', imageID: '', ready: true, restartCount: 0 }] };
  over(pod);
  return pod;
}

const group = (over: (p: V1Pod) => void = () => {}, epoch = 1) => [0, 1, 2, 3].map((r) => runningPod(r, epoch, r === 2 ? over : () => {}));
const node = (ready: boolean, unschedulable = false, since = T0): NodeView => ({ ready, since, unschedulable, labels: {}, allocatable: {}, taints: [] });
const nodes = new Map<string, NodeView>([0, 1, 2, 3].map((i) => [`gpu-node-${i}`, node(true)]));

function plan(over: Partial<GroupPlanInput>) {
  return planGroup({ bd, record: record(), serviceResourceVersion: '7', pods: [], nodes, now: T0 + 60_000, revision, resetToken: undefined, clusterDomain: CLUSTER_DOMAIN, ...over });
}

const kinds = (p: ReturnType<typeof plan>) => p.actions.map((a) => a.kind);

describe('planGroup (gang lifecycle of one group)', () => {
  const gatedGroup = (gates = ['inference.bloom.dev/gang']) => group().map((p) => { p.spec!.schedulingGates = gates.map((name) => ({ name })); delete p.spec!.nodeName; p.status = { phase: 'Pending' }; return p; });
  const ungated = (p: ReturnType<typeof plan>) => p.actions.flatMap((a) => (a.kind === 'ungatePod' ? [a.name] : []));

  it('creates every pod gated, unpinned, then releases pod 0 first and the others once it is bound (leader first)', () => {
    const first = plan({});
    assert.deepEqual(kinds(first), ['createPod', 'createPod', 'createPod', 'createPod']);
    assert.equal(first.status.phase, 'Pending');
    for (const a of first.actions) assert.ok(a.kind === 'createPod' && a.pod.spec?.affinity?.nodeAffinity === undefined, 'never pinned to a node or domain');
    const gated = gatedGroup();
    assert.deepEqual(kinds(plan({ pods: gated.slice(0, 3) })), ['createPod'], 'a missing pod of a gated group is created, not a failure');
    const leaderFirst = plan({ pods: gated });
    assert.deepEqual(ungated(leaderFirst), ['bloom-g0-p0-e1']);
    assert.equal(leaderFirst.state, 'Gated');
    gated[0]!.spec!.schedulingGates = [];
    const waiting = plan({ pods: gated });
    assert.deepEqual(ungated(waiting), [], 'the others wait while pod 0 is not bound');
    assert.match(waiting.status.message ?? '', /waiting for pod 0/);
    gated[0]!.spec!.nodeName = 'gpu-node-0';
    const rest = plan({ pods: gated });
    assert.deepEqual(ungated(rest), ['bloom-g0-p1-e1', 'bloom-g0-p2-e1', 'bloom-g0-p3-e1']);
    assert.equal(rest.state, 'Scheduling');
  });

  it('lifts only its own gate: the action names its index among other controllers\' gates', () => {
    const gated = gatedGroup(['kueue.x-k8s.io/admission', 'inference.bloom.dev/gang']);
    const ungates = plan({ pods: gated }).actions.filter((a) => a.kind === 'ungatePod');
    assert.deepEqual(ungates.map((a) => a.kind === 'ungatePod' && a.gateIndex), [1]);
    const lifted = gated.map((p) => { p.spec!.schedulingGates = [{ name: 'kueue.x-k8s.io/admission' }]; return p; });
    assert.equal(plan({ pods: lifted }).actions.filter((a) => a.kind === 'ungatePod').length, 0, 'a foreign gate alone is not ours to lift');
  });

  it('Kueue: pods carry the pod group of their incarnation, are never gated, pinned or ungated by the operator', () => {
    const kueue = bloomDeployment(8, { gpusPerPod: 4, placement: { topologyKey: 'nvidia.com/gpu.clique' }, gang: { policy: 'Kueue', queueName: 'gpus' } });
    const rev = podRevision(kueue.spec);
    const first = plan({ bd: kueue, record: record({ revision: rev, epoch: 3 }), revision: rev });
    assert.deepEqual(kinds(first), ['createPod', 'createPod']);
    assert.equal(first.state, 'Scheduling');
    for (const a of first.actions) {
      assert.ok(a.kind === 'createPod');
      assert.deepEqual(a.pod.spec?.schedulingGates, []);
      assert.equal(a.pod.spec?.affinity?.nodeAffinity, undefined);
      assert.equal(a.pod.metadata?.labels?.['kueue.x-k8s.io/queue-name'], 'gpus');
      assert.equal(a.pod.metadata?.labels?.['kueue.x-k8s.io/pod-group-name'], 'bloom-g0-e3');
      assert.deepEqual([a.pod.metadata?.annotations?.['kueue.x-k8s.io/pod-group-total-count'], a.pod.metadata?.annotations?.['kueue.x-k8s.io/podset-required-topology'],
        a.pod.metadata?.annotations?.['kueue.x-k8s.io/retriable-in-group'], a.pod.metadata?.annotations?.['kueue.x-k8s.io/role-hash']], ['2', 'nvidia.com/gpu.clique', 'false', 'main']);
    }
    const held = first.actions.map((a) => (a.kind === 'createPod' ? a.pod : undefined)!).map((p, i) => { p.metadata!.uid = `u${i}`; p.spec!.schedulingGates = [{ name: 'kueue.x-k8s.io/admission' }]; p.status = { phase: 'Pending' }; return p; });
    const waiting = plan({ bd: kueue, record: record({ revision: rev, epoch: 3 }), revision: rev, pods: held, now: T0 + 3_600_000 });
    assert.deepEqual(kinds(waiting), [], 'Kueue\'s gate is Kueue\'s: nothing to do, no timeout charged while queued');
    assert.equal(waiting.status.phase, 'Pending');
  });

  it('PodGroup: applies the incarnation\'s PodGroup before its pods, which name it; it goes with them', () => {
    const pg = bloomDeployment(8, { gpusPerPod: 4, placement: { topologyKey: 'nvidia.com/gpu.clique' }, gang: { policy: 'PodGroup' } });
    const rev = podRevision(pg.spec);
    const first = plan({ bd: pg, record: record({ revision: rev, epoch: 2 }), revision: rev });
    assert.deepEqual(kinds(first), ['applyPodGroup', 'createPod', 'createPod']);
    const apply = first.actions[0]!;
    assert.ok(apply.kind === 'applyPodGroup');
    assert.equal(apply.podGroup.metadata?.name, 'bloom-g0-e2');
    assert.deepEqual(apply.podGroup.spec, { schedulingPolicy: { gang: { minCount: 2 } }, schedulingConstraints: { topology: [{ key: 'nvidia.com/gpu.clique' }] } });
    assert.equal(apply.podGroup.metadata?.ownerReferences?.[0]?.kind, 'BloomDeployment');
    const pods = first.actions.flatMap((a) => (a.kind === 'createPod' ? [a.pod] : []));
    for (const pod of pods) {
      assert.deepEqual((pod.spec as { schedulingGroup?: unknown }).schedulingGroup, { podGroupName: 'bloom-g0-e2' });
      assert.equal(pod.metadata?.annotations?.['inference.bloom.dev/pod-group'], 'bloom-g0-e2', 'read back from the cache (a typed LIST drops schedulingGroup)');
      assert.deepEqual(pod.spec?.schedulingGates, []);
    }
    pods.forEach((p, i) => { p.metadata!.uid = `u${i}`; p.spec!.nodeName = `gpu-node-${i}`; p.status = { phase: 'Failed' }; });
    const restart = plan({ bd: pg, record: record({ revision: rev, epoch: 2 }), revision: rev, pods });
    assert.deepEqual(kinds(restart).sort(), ['deletePod', 'deletePod', 'deletePodGroup', 'patchRecord']);
    assert.ok(restart.actions.some((a) => a.kind === 'deletePodGroup' && a.name === 'bloom-g0-e2'));
  });

  it('a placement stall (pods unschedulable beside the bound one) recreates the group without charging the budget', () => {
    const pods = group().map((p, i) => {
      if (i > 0) { delete p.spec!.nodeName; p.status = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', lastTransitionTime: new Date(T0) }] }; }
      return p;
    });
    const p = plan({ pods, now: T0 + 61_000 });
    assert.equal(p.state, 'BackingOff');
    assert.equal(p.status.lastFailure?.reason, 'PlacementStalled');
    assert.equal(p.status.lastFailure?.class, 'Disruption');
    assert.equal(p.status.restarts, 0, 'not charged to maxGroupRestarts');
    assert.equal(p.status.disruptions, 1);
  });

  it('closes every pod\'s readiness gate as soon as one pod is not ready (the group leaves the endpoints before any restart)', () => {
    const pods = group();
    pods[3]!.status!.conditions = [...readiness(false, T0 + 59_000), { type: 'inference.bloom.dev/group-ready', status: 'True', lastTransitionTime: new Date(T0) }];
    const p = plan({ pods, record: record({ readySince: T0 }) });
    assert.equal(p.state, 'Ready', 'still within readinessLossSeconds: no restart yet');
    assert.deepEqual(p.actions.map((a) => a.kind === 'setGroupReady' && `${a.name}:${a.ready}`), ['bloom-g0-p0-e1:false', 'bloom-g0-p1-e1:false', 'bloom-g0-p2-e1:false', 'bloom-g0-p3-e1:false']);
    const closed = pods.map((pod) => { pod.status!.conditions = pod.status!.conditions!.map((c) => (c.type === 'inference.bloom.dev/group-ready' ? { ...c, status: 'False' } : c)); return pod; });
    assert.deepEqual(kinds(plan({ pods: closed, record: record({ readySince: T0 }) })), [], 'a closed gate is not written again');
  });

  it('reports ready pods and ready ranks (pods x gpusPerPod)', () => {
    const pods = group();
    pods[3]!.status!.conditions = readiness(false, T0 + 59_000);
    const p = plan({ pods, record: record({ readySince: T0 }) });
    assert.deepEqual([p.status.readyPods, p.status.readyRanks], [3, 6]);
    assert.equal(p.status.leaderAddress, `bloom-g0-p0.bloom-g0.serving.svc.cluster.local`);
  });

  it('runs a single-pod group (TP=8 in one 8-GPU pod) without a gate or a domain pick', () => {
    const single = bloomDeployment(8, { failurePolicy: { maxGroupRestarts: 2 } });
    const first = plan({ bd: single, record: record({ revision: podRevision(single.spec) }), revision: podRevision(single.spec) });
    assert.deepEqual(kinds(first), ['createPod']);
    const created = first.actions[0]!;
    assert.ok(created.kind === 'createPod');
    assert.deepEqual(created.pod.spec?.schedulingGates, []);
    assert.equal(created.pod.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'], '8');
    assert.equal(created.pod.spec?.affinity, undefined, 'a single pod is never pinned: the scheduler fits it on one node');
    const running = runningPod(0, 1, () => {}, single);
    const ready = plan({ bd: single, pods: [running], record: record({ revision: podRevision(single.spec), readySince: T0 }), revision: podRevision(single.spec) });
    assert.equal(ready.status.phase, 'Ready');
    assert.deepEqual([ready.status.readyPods, ready.status.readyRanks, ready.status.leaderAddress], [1, 8, '127.0.0.1']);
    const failed = runningPod(0, 1, (p) => { p.status!.phase = 'Failed'; }, single);
    const restart = plan({ bd: single, pods: [failed], record: record({ revision: podRevision(single.spec), readySince: T0 }), revision: podRevision(single.spec) });
    assert.equal(restart.status.phase, 'Restarting');
    assert.deepEqual(restart.status.lastFailure?.pod, 0);
    assert.equal(restart.status.epoch, 2);
  });

  it('records the first time the group is ready, once, and opens every pod\'s readiness gate', () => {
    const fresh = group().map((pod) => { pod.status!.conditions = readiness(true, T0); return pod; });
    const p = plan({ pods: fresh });
    assert.equal(p.status.phase, 'Ready');
    assert.deepEqual(kinds(p), ['patchRecord', 'setGroupReady', 'setGroupReady', 'setGroupReady', 'setGroupReady']);
    assert.ok(p.actions.every((a) => a.kind !== 'setGroupReady' || a.ready));
    assert.deepEqual(p.events.map((e) => e.reason), ['GroupReady']);
    const again = plan({ pods: group(), record: record({ readySince: T0 + 1 }) });
    assert.deepEqual(again.actions, []);
    assert.equal(again.ready, true);
  });

  const faults: Array<[string, (p: V1Pod) => void, string]> = [
    ['a failed rank (its launcher exited)', (p) => { p.status!.phase = 'Failed'; }, 'RankFailed'],
    ['a container restart', (p) => { p.status!.containerStatuses![0]!.restartCount = 1; }, 'RankRestarted'],
    ['a deleted or evicted pod', (p) => { p.metadata!.deletionTimestamp = new Date(T0); }, 'RankDeleted'],
    ['a pod on a NotReady node', (p) => { p.spec!.nodeName = 'gpu-node-9'; }, 'NodeLost'],
    ['readiness lost past the threshold', (p) => { p.status!.conditions = readiness(false, T0); }, 'ReadinessLost'],
  ];
  for (const [what, fault, reason] of faults) {
    it(`recreates the whole group with a new epoch after ${what}`, () => {
      const n = new Map(nodes);
      n.set('gpu-node-9', node(false, false, T0 - 60_000)); // NotReady for 120 s, the default nodeLostGraceSeconds
      const p = plan({ pods: group(fault), record: record({ readySince: T0 }), nodes: n });
      assert.equal(p.status.phase, 'Restarting');
      assert.equal(p.status.epoch, 2);
      assert.equal(p.status.lastFailure?.reason, reason);
      assert.equal(p.status.lastFailure?.pod, 2, 'the failing pod is named');
      const patch = p.actions.find((a) => a.kind === 'patchRecord');
      assert.ok(patch && patch.kind === 'patchRecord');
      assert.equal(patch.annotations['inference.bloom.dev/epoch'], '2');
      assert.equal(patch.resourceVersion, '7', 'the epoch bump is guarded by the Service resourceVersion');
      assert.equal(patch.selector?.['inference.bloom.dev/epoch'], '2', 'rendezvous DNS moves to the new epoch');
      const deletes = p.actions.filter((a) => a.kind === 'deletePod').length;
      assert.equal(deletes, reason === 'RankDeleted' ? 3 : 4, 'every pod of the old epoch is deleted');
      const disruption = reason === 'RankDeleted' || reason === 'NodeLost';
      assert.deepEqual(p.events.map((e) => e.reason), [disruption ? 'GroupDisrupted' : 'GroupRestarting']);
      assert.equal(p.status.lastFailure?.class, disruption ? 'Disruption' : 'Workload');
      assert.deepEqual([p.status.restarts, p.status.disruptions ?? 0], disruption ? [0, 1] : [1, 0], 'only workload failures are charged');
    });
  }

  it('does not start the new epoch until every pod of the old one is gone and the back-off passed', () => {
    const next = record({ epoch: 2, restarts: 1, restartTimes: [T0], notBefore: T0 + 10_000 });
    const old = group().map((p) => { p.metadata!.deletionTimestamp = new Date(T0); return p; });
    assert.deepEqual(kinds(plan({ record: next, pods: old, now: T0 + 5_000 })), []);
    assert.deepEqual(kinds(plan({ record: next, pods: old, now: T0 + 20_000 })), [], 'old epoch still terminating');
    assert.deepEqual(kinds(plan({ record: next, pods: [], now: T0 + 20_000 })), ['createPod', 'createPod', 'createPod', 'createPod']);
    assert.equal(plan({ record: next, pods: old, now: T0 + 5_000 }).wakeAt, T0 + 10_000);
  });

  it('gives up after maxGroupRestarts within the window, with the reason', () => {
    const p = plan({ pods: group((pod) => { pod.status!.phase = 'Failed'; }), record: record({ readySince: T0, restarts: 2, restartTimes: [T0 - 1000, T0 - 500] }) });
    assert.equal(p.status.phase, 'Failed');
    assert.match(p.status.message ?? '', /gave up after 2 restarts within 3600s \(maxGroupRestarts=2\)/);
    assert.deepEqual(p.events.map((e) => e.reason), ['GroupFailed']);
    assert.equal(p.actions.filter((a) => a.kind === 'deletePod').length, 4, 'a failed group frees its GPUs');
  });

  it('backs off exponentially between recreations', () => {
    const p = plan({ pods: group((pod) => { pod.status!.phase = 'Failed'; }), record: record({ readySince: T0, restarts: 1, restartTimes: [T0] }) });
    assert.equal(p.status.nextRestartTime, new Date(T0 + 60_000 + 20_000).toISOString());
  });

  it('times out a group that never becomes ready', () => {
    const unready = group().map((p) => { p.status!.conditions = readiness(false, T0); return p; });
    const within = plan({ pods: unready, now: T0 + 1000 });
    assert.equal(within.status.phase, 'Starting');
    assert.equal(within.wakeAt, T0 + bd.spec.failurePolicy.startupTimeoutSeconds * 1000);
    assert.equal(plan({ pods: unready, now: T0 + bd.spec.failurePolicy.startupTimeoutSeconds * 1000 }).status.lastFailure?.reason, 'StartupTimeout');
  });

  it('force-removes pods stuck terminating on a lost node after the grace period', () => {
    const lost = new Map<string, NodeView>([0, 1, 2, 3].map((i) => [`gpu-node-${i}`, node(false)]));
    const stuck = group().map((p) => { p.metadata!.deletionTimestamp = new Date(T0); return p; });
    const rec = record({ epoch: 2 });
    const grace = bd.spec.failurePolicy.nodeLostGraceSeconds * 1000;
    assert.deepEqual(plan({ pods: stuck, nodes: lost, record: rec, now: T0 + grace - 1 }).actions, []);
    const forced = plan({ pods: stuck, nodes: lost, record: rec, now: T0 + grace });
    assert.deepEqual(forced.actions.map((a) => a.kind === 'deletePod' && a.force), [true, true, true, true]);
  });

  it('is reset by the reset annotation, and revived when it had failed', () => {
    const p = plan({ record: record({ failed: 'gave up', restartTimes: [T0], epoch: 3 }), resetToken: 'r1' });
    const patch = p.actions.find((a) => a.kind === 'patchRecord');
    assert.ok(patch && patch.kind === 'patchRecord');
    assert.equal(patch.annotations['inference.bloom.dev/failed'], null);
    assert.equal(patch.annotations['inference.bloom.dev/epoch'], '4');
    assert.equal(p.status.phase, 'Pending');
  });

  it('leaves an outdated failing group to the rollout instead of recreating it', () => {
    const p = plan({ pods: group((pod) => { pod.status!.phase = 'Failed'; }), record: record({ revision: 'old', readySince: T0 }) });
    assert.equal(p.upToDate, false);
    assert.equal(p.actions.some((a) => a.kind === 'patchRecord'), false);
  });

  it('round-trips its record through Service annotations', () => {
    const r = record({ readySince: T0 + 5, restarts: 3, restartTimes: [T0, T0 + 1000], notBefore: T0 + 9000, lastFailure: { reason: 'RankFailed', message: 'x', pod: 2, time: new Date(T0).toISOString() } });
    const annotations = Object.fromEntries(Object.entries(recordAnnotations(r)).filter(([, v]) => v !== null)) as Record<string, string>;
    const read = readRecord({ metadata: { labels: { 'inference.bloom.dev/group': '0' }, annotations } });
    assert.deepEqual(read, r);
  });
});

describe('planGroup: failure classes and timers', () => {
  const crashed = (p: V1Pod) => { p.status!.phase = 'Failed'; };
  const preempted = (p: V1Pod) => {
    p.metadata!.deletionTimestamp = new Date(T0 + 50_000);
    p.status!.conditions = [...p.status!.conditions!, { type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler', lastTransitionTime: new Date(T0 + 50_000) }];
  };
  const evicted = (p: V1Pod) => { p.status!.phase = 'Failed'; p.status!.reason = 'Evicted'; p.status!.message = 'The node was low on resource: memory.'; };

  it('disruptions (preemption, kubelet eviction) recreate the group without charging the budget, however many', () => {
    const exhausted = record({ readySince: T0, restarts: 2, restartTimes: [T0 - 2000, T0 - 1000] });
    for (const [fault, reason] of [[preempted, 'RankPreempted'], [evicted, 'RankEvicted']] as const) {
      const p = plan({ pods: group(fault), record: { ...exhausted, disruptions: 7, disruptionTimes: [T0 - 500] } });
      assert.equal(p.status.phase, 'Restarting', `${reason}: not Failed although the restart budget is spent`);
      assert.deepEqual([p.status.lastFailure?.reason, p.status.lastFailure?.class, p.status.restarts, p.status.disruptions], [reason, 'Disruption', 2, 8]);
      assert.equal(p.state, 'BackingOff');
      const patch = p.actions.find((a) => a.kind === 'patchRecord');
      assert.ok(patch?.kind === 'patchRecord');
      // its own back-off: the 2nd disruption in the window waits backoffSeconds * 2
      assert.equal(patch.annotations['inference.bloom.dev/not-before'], new Date(T0 + 60_000 + 20_000).toISOString());
    }
  });

  it('a crash is charged; the budget spent makes the group Failed, retried a restartWindowSeconds later with a fresh budget', () => {
    const failed = plan({ pods: group(crashed), record: record({ readySince: T0, restarts: 2, restartTimes: [T0 - 2000, T0 - 1000] }) });
    assert.equal(failed.state, 'Failed');
    assert.equal(failed.wakeAt, T0 + 60_000 + 3_600_000, 'wakes when the window has passed');
    const record0 = record({ epoch: 1, restarts: 2, restartTimes: [T0 - 2000, T0 - 1000], failed: 'gave up', failedAt: T0 + 60_000 });
    const waiting = plan({ record: record0, pods: [], now: T0 + 60_000 + 3_599_000 });
    assert.deepEqual([waiting.state, kinds(waiting)], ['Failed', []]);
    const retried = plan({ record: record0, pods: [], now: T0 + 60_000 + 3_600_000 });
    assert.deepEqual(retried.events.map((e) => e.reason), ['GroupRetrying']);
    assert.equal(retried.status.epoch, 2);
    assert.equal(retried.state, 'Gated', 'the new incarnation is created at once (no pod of the old one is left)');
    assert.deepEqual(kinds(retried), ['patchRecord', 'createPod', 'createPod', 'createPod', 'createPod']);
    const patch = retried.actions[0]!;
    assert.ok(patch.kind === 'patchRecord');
    assert.deepEqual([patch.annotations['inference.bloom.dev/failed'], patch.annotations['inference.bloom.dev/restart-times']], [null, null]);
  });

  it('a Failed record of an older operator (no failed-at) gets its time written once', () => {
    const p = plan({ record: record({ failed: 'gave up' }), pods: [] });
    const patch = p.actions.find((a) => a.kind === 'patchRecord');
    assert.ok(patch?.kind === 'patchRecord');
    assert.equal(patch.annotations['inference.bloom.dev/failed-at'], new Date(T0 + 60_000).toISOString());
  });

  it('a node NotReady for less than nodeLostGraceSeconds restarts nothing and wakes at the grace; past it, the group is recreated (a disruption)', () => {
    const blip = new Map(nodes);
    blip.set('gpu-node-9', node(false, false, T0 + 55_000));
    const onBlip = group((p) => { p.spec!.nodeName = 'gpu-node-9'; });
    const early = plan({ pods: onBlip, record: record({ readySince: T0 }), nodes: blip });
    assert.deepEqual([early.state, kinds(early), early.wakeAt], ['Ready', [], T0 + 55_000 + 120_000]);
    const late = plan({ pods: onBlip, record: record({ readySince: T0 }), nodes: blip, now: T0 + 55_000 + 120_000 });
    assert.deepEqual([late.status.lastFailure?.reason, late.status.lastFailure?.class], ['NodeLost', 'Disruption']);
  });

  it('the startup timeout runs from the last pod being scheduled, not from the epoch start (waiting for GPUs is not starting)', () => {
    const boundAt = T0 + 3_000_000; // 50 minutes Pending for capacity; the startup timeout is 30
    const starting = group().map((p) => { p.status!.conditions = [...readiness(false, boundAt), { type: 'PodScheduled', status: 'True', lastTransitionTime: new Date(boundAt) }]; return p; });
    const justBound = plan({ pods: starting, now: boundAt + 1_000 });
    assert.deepEqual([justBound.state, kinds(justBound), justBound.wakeAt], ['Starting', [], boundAt + 1_800_000]);
    const timedOut = plan({ pods: starting, now: boundAt + 1_800_000 });
    assert.deepEqual([timedOut.status.lastFailure?.reason, timedOut.status.lastFailure?.class], ['StartupTimeout', 'Workload']);
  });

  it('force-deletes a pod stuck Terminating nodeLostGraceSeconds past its deadline, also without a node watch', () => {
    const stuck = runningPod(0, 1, (p) => { p.metadata!.deletionTimestamp = new Date(T0); });
    const next = record({ epoch: 2, restartTimes: [T0], restarts: 1 });
    const early = plan({ record: next, pods: [stuck], nodes: undefined, now: T0 + 119_000 });
    assert.deepEqual([kinds(early), early.wakeAt], [[], T0 + 120_000]);
    const late = plan({ record: next, pods: [stuck], nodes: undefined, now: T0 + 120_000 });
    assert.deepEqual(late.actions.map((a) => a.kind === 'deletePod' && a.force), [true]);
  });

  it('says why a group waits for the scheduler', () => {
    const pending = group().map((p) => {
      delete p.spec!.nodeName;
      p.status = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/8 nodes are available: 8 Insufficient nvidia.com/gpu.', lastTransitionTime: new Date(T0) }] };
      return p;
    });
    const p = plan({ pods: pending });
    assert.equal(p.state, 'Scheduling');
    assert.equal(p.status.message, 'waiting for the scheduler: pod bloom-g0-p0-e1: Unschedulable: 0/8 nodes are available: 8 Insufficient nvidia.com/gpu.');
  });
});

describe('planGroup: drains', () => {
  const onNode9 = () => group((p) => { p.spec!.nodeName = 'gpu-node-9'; });
  const withNode9 = (view: NodeView) => new Map([...nodes, ['gpu-node-9', view]]);

  it('a cordon alone replaces nothing (maintenance that never evicts must not churn groups)', () => {
    const p = plan({ pods: onNode9(), record: record({ readySince: T0 }), nodes: withNode9(node(true, true)) });
    assert.deepEqual([p.upToDate, kinds(p)], [true, []]);
  });

  it('an autoscaler\'s drain taint or an asked-for eviction makes the group outdated, for a surge-first replacement', () => {
    const karpenter = plan({ pods: onNode9(), record: record({ readySince: T0 }), nodes: withNode9({ ...node(true, true), draining: 'node gpu-node-9 has the karpenter.sh/disrupted taint' }) });
    assert.deepEqual([karpenter.upToDate, karpenter.state, kinds(karpenter)], [false, 'Ready', []], 'still serving until the rollout replaces it');
    assert.match(karpenter.status.message ?? '', /draining: node gpu-node-9 has the karpenter.sh\/disrupted taint/);
    const asked = group((p) => { p.metadata!.annotations = { ...p.metadata!.annotations, 'inference.bloom.dev/drain-requested': '2026-12-01T12:00:30Z' }; });
    const evicted = plan({ pods: asked, record: record({ readySince: T0 }) });
    assert.equal(evicted.upToDate, false);
    assert.match(evicted.status.message ?? '', /an eviction of pod bloom-g0-p2-e1 was asked for/);
  });
});
