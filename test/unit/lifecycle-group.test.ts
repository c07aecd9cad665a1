import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { desiredRankPod } from '../../operator/src/groups/pod.js';
import { podRevision } from '../../operator/src/groups/revision.js';
import { planGroup, type GroupPlanInput } from '../../operator/src/lifecycle/group-plan.js';
import { readRecord, recordAnnotations, type GroupRecord } from '../../operator/src/lifecycle/group-record.js';
import type { NodeView } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const T0 = Date.parse('2026-11-22T12:00:00Z');
const bd: BloomDeployment = bloomDeployment(4, { failurePolicy: { backoffSeconds: 10, maxBackoffSeconds: 300, maxGroupRestarts: 2 } });
const revision = podRevision(bd.spec);

function record(over: Partial<GroupRecord> = {}): GroupRecord {
  return { index: 0, epoch: 1, revision, epochStarted: T0, restarts: 0, restartTimes: [], ...over };
}

function runningPod(rank: number, epoch = 1, over: (p: V1Pod) => void = () => {}): V1Pod {
  const pod = desiredRankPod({ bd, group: 0, rank, epoch, revision, clusterDomain: CLUSTER_DOMAIN });
  pod.metadata!.uid = `uid-${epoch}-${rank}`;
  pod.spec!.schedulingGates = [];
  pod.spec!.nodeName = 'gpu-node-0';
  pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(T0) }], containerStatuses: [{ name: 'worker', image: 'x', imageID: '', ready: true, restartCount: 0 }] };
  over(pod);
  return pod;
}

const group = (over: (p: V1Pod) => void = () => {}, epoch = 1) => [0, 1, 2, 3].map((r) => runningPod(r, epoch, r === 2 ? over : () => {}));
const node = (ready: boolean, unschedulable = false): NodeView => ({ ready, since: T0, unschedulable, labels: {}, allocatable: {} });
const nodes = new Map<string, NodeView>([['gpu-node-0', node(true)]]);

function plan(over: Partial<GroupPlanInput>) {
  return planGroup({ bd, record: record(), serviceResourceVersion: '7', pods: [], nodes, now: T0 + 60_000, revision, resetToken: undefined, clusterDomain: CLUSTER_DOMAIN, picker: { pick: () => undefined }, ...over });
}

const kinds = (p: ReturnType<typeof plan>) => p.actions.map((a) => a.kind);

describe('planGroup (gang lifecycle of one group)', () => {
  it('creates every rank gated, then lifts the gates only once all ranks exist', () => {
    const first = plan({});
    assert.deepEqual(kinds(first), ['createPod', 'createPod', 'createPod', 'createPod']);
    assert.equal(first.status.phase, 'Pending');
    const gated = group().map((p) => { p.spec!.schedulingGates = [{ name: 'inference.bloom.dev/gang' }]; delete p.spec!.nodeName; return p; });
    assert.deepEqual(kinds(plan({ pods: gated.slice(0, 3) })), ['createPod'], 'a missing rank of a gated group is created, not a failure');
    assert.deepEqual(kinds(plan({ pods: gated })), ['ungatePod', 'ungatePod', 'ungatePod', 'ungatePod']);
  });

  it('records the first time the group is ready, once', () => {
    const p = plan({ pods: group() });
    assert.equal(p.status.phase, 'Ready');
    assert.deepEqual(kinds(p), ['patchRecord']);
    assert.deepEqual(p.events.map((e) => e.reason), ['GroupReady']);
    const again = plan({ pods: group(), record: record({ readySince: T0 + 1 }) });
    assert.deepEqual(again.actions, []);
    assert.equal(again.ready, true);
  });

  const faults: Array<[string, (p: V1Pod) => void, string]> = [
    ['a failed rank', (p) => { p.status!.phase = 'Failed'; }, 'RankFailed'],
    ['a container restart', (p) => { p.status!.containerStatuses![0]!.restartCount = 1; }, 'RankRestarted'],
    ['a deleted or evicted rank', (p) => { p.metadata!.deletionTimestamp = new Date(T0); }, 'RankDeleted'],
    ['a rank on a NotReady node', (p) => { p.spec!.nodeName = 'gpu-node-9'; }, 'NodeLost'],
    ['readiness lost past the threshold', (p) => { p.status!.conditions = [{ type: 'Ready', status: 'False', lastTransitionTime: new Date(T0) }]; }, 'ReadinessLost'],
  ];
  for (const [what, fault, reason] of faults) {
    it(`recreates the whole group with a new epoch after ${what}`, () => {
      const n = new Map(nodes);
      n.set('gpu-node-9', node(false));
      const p = plan({ pods: group(fault), record: record({ readySince: T0 }), nodes: n });
      assert.equal(p.status.phase, 'Restarting');
      assert.equal(p.status.epoch, 2);
      assert.equal(p.status.lastFailure?.reason, reason);
      const patch = p.actions.find((a) => a.kind === 'patchRecord');
      assert.ok(patch && patch.kind === 'patchRecord');
      assert.equal(patch.annotations['inference.bloom.dev/epoch'], '2');
      assert.equal(patch.resourceVersion, '7', 'the epoch bump is guarded by the Service resourceVersion');
      assert.equal(patch.selector?.['inference.bloom.dev/epoch'], '2', 'rendezvous DNS moves to the new epoch');
      const deletes = p.actions.filter((a) => a.kind === 'deletePod').length;
      assert.equal(deletes, reason === 'RankDeleted' ? 3 : 4, 'every rank of the old epoch is deleted');
      assert.deepEqual(p.events.map((e) => e.reason), ['GroupRestarting']);
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
    const unready = group().map((p) => { p.status!.conditions = [{ type: 'Ready', status: 'False', lastTransitionTime: new Date(T0) }]; return p; });
    const within = plan({ pods: unready, now: T0 + 1000 });
    assert.equal(within.status.phase, 'Starting');
    assert.equal(within.wakeAt, T0 + bd.spec.failurePolicy.startupTimeoutSeconds * 1000);
    assert.equal(plan({ pods: unready, now: T0 + bd.spec.failurePolicy.startupTimeoutSeconds * 1000 }).status.lastFailure?.reason, 'StartupTimeout');
  });

  it('force-removes pods stuck terminating on a lost node after the grace period', () => {
    const lost = new Map<string, NodeView>([['gpu-node-0', node(false)]]);
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
    const r = record({ readySince: T0 + 5, restarts: 3, restartTimes: [T0, T0 + 1000], notBefore: T0 + 9000, lastFailure: { reason: 'RankFailed', message: 'x', rank: 2, time: new Date(T0).toISOString() } });
    const annotations = Object.fromEntries(Object.entries(recordAnnotations(r)).filter(([, v]) => v !== null)) as Record<string, string>;
    const read = readRecord({ metadata: { labels: { 'inference.bloom.dev/group': '0' }, annotations } });
    assert.deepEqual(read, r);
  });
});
