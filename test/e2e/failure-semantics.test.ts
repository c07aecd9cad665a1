/**
 * Failure semantics on the real control plane: disruptions are not crashes, a Failed group comes
 * back a window later, a NotReady blip restarts nothing, waiting for capacity is not starting, and
 * an operator without a node watch still recovers a pod stuck on a dead node.
 */
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, getBd, installCrd, kubectl, podsOf, startOperator, testDeployment, waitForBd, type OperatorProcess } from './operator-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const group0 = (bd: BloomDeployment) => bd.status?.groups?.find((g) => g.index === 0);
const readyAt = (epoch: number) => (bd: BloomDeployment) => group0(bd)?.phase === 'Ready' && group0(bd)?.epoch === epoch;

async function livePod(ctx: E2eContext, bd: string): Promise<V1Pod> {
  let found: V1Pod | undefined;
  await waitFor(`a live pod of ${bd}`, async () => {
    found = (await podsOf(ctx, bd)).find((p) => !p.metadata?.deletionTimestamp && p.spec?.nodeName && p.status?.phase === 'Running');
    return found !== undefined;
  }, 60_000, 200);
  return found!;
}

async function events(ctx: E2eContext, bd: string, reason: string): Promise<number> {
  const list = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: `involvedObject.name=${bd},reason=${reason}` });
  return list.items.reduce((n, e) => n + (e.count ?? 1), 0);
}

describe('failure semantics: disruptions, Failed expiry, node grace, startup clock', function () {
  const ctx = useE2e('fail');
  let operator: OperatorProcess | undefined;
  before(async () => {
    await installCrd(ctx.cluster);
    operator = await startOperator(ctx.cluster, { extraArgs: ['--namespace', ctx.namespace] });
  });
  after(async () => {
    await operator?.stop();
    await kubectl(ctx.cluster, 'delete', 'priorityclass', `${ctx.namespace}-urgent`, '--ignore-not-found');
  });

  it('a group preempted three times with maxGroupRestarts: 2 is recreated each time and never Failed (disruptions are not charged)', async () => {
    await kubectl(ctx.cluster, 'create', 'priorityclass', `${ctx.namespace}-urgent`, '--value=1000000');
    await createBd(ctx, testDeployment('preempted', { failurePolicy: { maxGroupRestarts: 2, backoffSeconds: 0, maxBackoffSeconds: 1 } }));
    for (let epoch = 1; epoch <= 3; epoch++) {
      await waitForBd(ctx, 'preempted', `ready at epoch ${epoch}`, readyAt(epoch), 60_000);
      const victim = await livePod(ctx, 'preempted');
      const urgent = `urgent-${epoch}`;
      // A higher-priority pod that needs the victim's whole node: the real scheduler preempts it.
      await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: {
        metadata: { name: urgent },
        spec: {
          priorityClassName: `${ctx.namespace}-urgent`, nodeSelector: { 'kubernetes.io/hostname': victim.spec!.nodeName! }, tolerations: [{ operator: 'Exists' }],
          containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '8' } } }],
        },
      } });
      await waitFor(`${urgent} bound`, async () => (await ctx.core.readNamespacedPod({ name: urgent, namespace: ctx.namespace })).spec?.nodeName !== undefined, 60_000, 200);
      await waitForBd(ctx, 'preempted', `recreated after preemption ${epoch}`, readyAt(epoch + 1), 60_000);
      const g = group0(await getBd(ctx, 'preempted'))!;
      assert.deepEqual([g.restarts, g.disruptions, g.lastFailure?.class], [0, epoch, 'Disruption'], `after preemption ${epoch}`);
      assert.equal(g.lastFailure?.reason, 'RankPreempted');
    }
    assert.equal(await events(ctx, 'preempted', 'GroupFailed'), 0);
    assert.equal(await events(ctx, 'preempted', 'GroupDisrupted'), 3);
    for (let epoch = 1; epoch <= 3; epoch++) await ctx.core.deleteNamespacedPod({ name: `urgent-${epoch}`, namespace: ctx.namespace, gracePeriodSeconds: 0 });
  });

  it('a group that crashes three times with maxGroupRestarts: 2 is Failed, then retried a restartWindowSeconds later', async () => {
    await createBd(ctx, testDeployment('crashy', { failurePolicy: { maxGroupRestarts: 2, restartWindowSeconds: 20, backoffSeconds: 0, maxBackoffSeconds: 1 } }));
    for (let epoch = 1; epoch <= 3; epoch++) {
      await waitForBd(ctx, 'crashy', `ready at epoch ${epoch}`, readyAt(epoch), 60_000);
      const pod = await livePod(ctx, 'crashy');
      await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pod.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true');
      if (epoch < 3) await waitForBd(ctx, 'crashy', `restarted (${epoch})`, (b) => (group0(b)?.epoch ?? 0) > epoch, 60_000);
    }
    const failed = await waitForBd(ctx, 'crashy', 'Failed', (b) => group0(b)?.phase === 'Failed', 60_000);
    const failedAt = Date.now();
    assert.deepEqual([group0(failed)?.restarts, group0(failed)?.lastFailure?.class], [2, 'Workload']);
    assert.equal(failed.status?.updatedReplicas, 0, 'a Failed group is not an updated replica');
    assert.equal(failed.status?.conditions?.find((c) => c.type === 'Available')?.status, 'False');
    const back = await waitForBd(ctx, 'crashy', 'retried and Ready again', readyAt(4), 60_000);
    assert.ok(Date.now() - failedAt >= 15_000, `retried after the 20 s window (${Date.now() - failedAt} ms after Failed was seen)`);
    assert.equal(group0(back)?.restarts, 2, 'the retry itself is not a restart');
    assert.equal(await events(ctx, 'crashy', 'GroupRetrying'), 1);
  });

  it('a node NotReady for 5 s with the default grace restarts nothing; NotReady past the grace restarts exactly the groups on it', async () => {
    await createBd(ctx, testDeployment('blip', { replicas: 2 }));
    await waitForBd(ctx, 'blip', '2 ready groups', (b) => b.status?.readyReplicas === 2, 60_000);
    const pods = await podsOf(ctx, 'blip');
    const node = pods[0]!.spec!.nodeName!;
    await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io=true');
    await waitFor(`${node} NotReady`, async () => (await ctx.core.readNode({ name: node })).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') ?? false, 30_000, 200);
    await sleep(5_000);
    await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io-');
    await waitFor(`${node} Ready`, async () => (await ctx.core.readNode({ name: node })).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false, 30_000, 200);
    const after = await getBd(ctx, 'blip');
    assert.deepEqual((after.status?.groups ?? []).map((g) => g.epoch), [1, 1], 'a kubelet restart is not a lost node');

    await kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', 'bd', 'blip', '--type=merge', '-p', JSON.stringify({ spec: { failurePolicy: { nodeLostGraceSeconds: 3 } } }));
    const onNode = pods.filter((p) => p.spec?.nodeName === node).map((p) => Number(p.metadata!.labels![LABELS.group]));
    await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io=true');
    try {
      const recovered = await waitForBd(ctx, 'blip', 'the group on the lost node recreated', (b) => b.status?.readyReplicas === 2 && (b.status.groups ?? []).some((g) => g.epoch === 2), 60_000);
      const moved = (recovered.status?.groups ?? []).filter((g) => g.epoch === 2).map((g) => g.index);
      assert.deepEqual(moved, onNode, 'exactly the groups on that node');
      assert.ok((recovered.status?.groups ?? []).filter((g) => g.epoch === 2).every((g) => g.lastFailure?.reason === 'NodeLost' && g.restarts === 0));
    } finally {
      await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io-');
    }
  });

  it('a group Pending for capacity longer than its startup timeout is not restarted when it finally binds', async () => {
    const used = new Set((await ctx.core.listPodForAllNamespaces()).items.map((p) => p.spec?.nodeName).filter(Boolean));
    const node = (await ctx.core.listNode()).items.map((n) => n.metadata!.name!).sort().find((n) => !used.has(n) && n.startsWith('gpu-node'));
    assert.ok(node, 'a free node');
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: {
      metadata: { name: 'hog' }, spec: { nodeSelector: { 'kubernetes.io/hostname': node }, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }] },
    } });
    await waitFor('hog bound', async () => (await ctx.core.readNamespacedPod({ name: 'hog', namespace: ctx.namespace })).spec?.nodeName === node, 60_000, 200);
    await createBd(ctx, testDeployment('patient', { placement: { nodeSelector: { 'kubernetes.io/hostname': node } }, failurePolicy: { startupTimeoutSeconds: 3 } }));
    const waiting = await waitForBd(ctx, 'patient', 'waiting for the scheduler, with its reason', (b) => /waiting for the scheduler: .*Unschedulable.*Insufficient nvidia.com\/gpu/.test(group0(b)?.message ?? ''), 60_000);
    assert.equal(group0(waiting)?.phase, 'Pending');
    await sleep(6_000);
    await ctx.core.deleteNamespacedPod({ name: 'hog', namespace: ctx.namespace, gracePeriodSeconds: 0 });
    await waitForBd(ctx, 'patient', 'Ready at its first epoch', readyAt(1), 60_000);
    await sleep(4_000);
    const g = group0(await getBd(ctx, 'patient'))!;
    assert.deepEqual([g.phase, g.epoch, g.restarts], ['Ready', 1, 0], 'not restarted after binding late');
  });
});

describe('failure semantics without a node watch (namespace-scoped install)', function () {
  const ctx = useE2e('fail-ns');
  let operator: OperatorProcess | undefined;
  before(async () => {
    await installCrd(ctx.cluster);
    operator = await startOperator(ctx.cluster, { extraArgs: ['--namespace', ctx.namespace, '--no-watch-nodes'] });
  });
  after(async () => operator?.stop());

  it('recovers a group whose pod is stuck Terminating on a dead node (force-deleted past its grace plus nodeLostGraceSeconds)', async () => {
    await createBd(ctx, testDeployment('stranded', { worker: { image: 'ghcr.io/bloom-operator/worker:test', terminationGracePeriodSeconds: 1 }, failurePolicy: { nodeLostGraceSeconds: 3, backoffSeconds: 0, maxBackoffSeconds: 1 } }));
    await waitForBd(ctx, 'stranded', 'ready', readyAt(1), 60_000);
    const pod = await livePod(ctx, 'stranded');
    const node = pod.spec!.nodeName!;
    // Its kubelet dies: the node goes NotReady (which this operator cannot see) and nothing confirms the pod's deletion.
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pod.metadata!.name!, 'pod-kubelet-dead.stage.kwok.x-k8s.io=true');
    await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io=true');
    try {
      await ctx.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ctx.namespace });
      await sleep(2_000);
      assert.ok((await ctx.core.readNamespacedPod({ name: pod.metadata!.name!, namespace: ctx.namespace })).metadata?.deletionTimestamp, 'stuck Terminating');
      await waitForBd(ctx, 'stranded', 'recreated on another node', readyAt(2), 60_000);
      const pods = await podsOf(ctx, 'stranded');
      assert.deepEqual(pods.map((p) => p.metadata?.labels?.[LABELS.epoch]), ['2'], 'the stuck pod was force-deleted');
      assert.notEqual(pods[0]!.spec?.nodeName, node);
    } finally {
      await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io-');
    }
  });
});
