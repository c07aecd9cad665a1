import assert from 'node:assert/strict';
import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { LABELS } from '../../operator/src/groups/labels.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { gpuNode, NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, getBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

const epochs = (bd: BloomDeployment) => Object.fromEntries((bd.status?.groups ?? []).map((g) => [g.index, g.epoch]));
const allReady = (replicas: number) => (b: BloomDeployment) =>
  b.status?.readyReplicas === replicas && b.status.replicas === replicas && (b.status.groups ?? []).every((g) => g.phase === 'Ready');

const fastPolicy = { backoffSeconds: 0, maxBackoffSeconds: 5, readinessLossSeconds: 2, nodeLostGraceSeconds: 5, maxGroupRestarts: 50 };

async function groupPod(ctx: E2eContext, bd: string, group: number, index: number): Promise<V1Pod> {
  const pods = await podsOf(ctx, bd, { [LABELS.group]: String(group), [LABELS.pod]: String(index) });
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
  assert.equal(live.length, 1, `one live pod for group ${group} pod ${index}`);
  return live[0]!;
}

describe('group health and lifecycle (gang restarts with epochs)', function () {
  const ctx = useE2e('life');
  useOperator(ctx);

  before(async () => {
    // TP=4 as 2 pods x 2 GPUs, one group per NVLink clique: a fault of either pod recreates the whole group
    await createBd(ctx, testDeployment('chat', { replicas: 3, ...multiPodSpec(4, 2, { exclusive: true }), failurePolicy: fastPolicy }));
    await waitForBd(ctx, 'chat', '3 ready groups', allReady(3));
  });
  const faults: Array<[string, (pod: V1Pod) => Promise<unknown>, string]> = [
    ['a rank container fails', (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pod.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true'), 'RankFailed'],
    ['a rank container restarts', (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pod.metadata!.name!, 'pod-container-restarted.stage.kwok.x-k8s.io=true'), 'RankRestarted'],
    ['a rank pod is deleted', (pod) => ctx.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ctx.namespace }), 'RankDeleted'],
    // The eviction API refuses ranks of serving groups (see drain.test.ts); a kubelet's node-pressure eviction does not ask.
    ['a rank pod is evicted by its kubelet', (pod) => ctx.core.patchNamespacedPodStatus(
      { name: pod.metadata!.name!, namespace: ctx.namespace, body: { status: { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch)), 'RankEvicted'],
    ['a rank loses readiness', (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pod.metadata!.name!, 'pod-not-ready.stage.kwok.x-k8s.io=true'), 'ReadinessLost'],
    ['the node of a rank becomes NotReady', async (pod) => {
      const node = pod.spec!.nodeName!;
      await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io=true');
      return node;
    }, 'NodeLost'],
    ['the node of a rank is gone', (pod) => ctx.core.deleteNode({ name: pod.spec!.nodeName! }), 'NodeLost'],
  ];

  faults.forEach(([what, inject, reason], i) => {
    it(`recreates exactly that group with a higher epoch when ${what}`, async () => {
      const group = i % 3;
      const before = await waitForBd(ctx, 'chat', 'all ready', allReady(3));
      const victim = await groupPod(ctx, 'chat', group, i % 2);
      const node = victim.spec!.nodeName!;
      const clique = (await ctx.core.readNode({ name: node })).metadata!.labels![NVLINK_DOMAIN_LABEL]!;
      await inject(victim);
      try {
        const after = await waitForBd(ctx, 'chat', `group ${group} recreated and ready`, (b) => {
          const g = b.status?.groups?.find((x) => x.index === group);
          return allReady(3)(b) && (g?.epoch ?? 0) > before.status!.groups!.find((x) => x.index === group)!.epoch;
        }, 120_000);
        const e0 = epochs(before);
        const e1 = epochs(after);
        for (const g of [0, 1, 2]) assert.equal(e1[g], g === group ? e0[g]! + 1 : e0[g], `epoch of group ${g}`);
        const status = after.status!.groups!.find((x) => x.index === group)!;
        assert.equal(status.lastFailure?.reason, reason);
        const was = before.status!.groups!.find((x) => x.index === group)!;
        // A workload failure is charged to the restart budget; a disruption (deletion, eviction, node loss) is counted apart.
        const disruption = ['RankDeleted', 'RankEvicted', 'NodeLost'].includes(reason);
        assert.deepEqual([status.restarts, status.disruptions ?? 0, status.lastFailure?.class],
          disruption ? [was.restarts, (was.disruptions ?? 0) + 1, 'Disruption'] : [was.restarts + 1, was.disruptions ?? 0, 'Workload']);
        const pods = await podsOf(ctx, 'chat', { [LABELS.group]: String(group) });
        assert.deepEqual([...new Set(pods.map((p) => p.metadata?.labels?.[LABELS.epoch]))], [String(e1[group])], 'only the new epoch remains');
        if (reason === 'NodeLost') assert.ok(pods.every((p) => p.spec?.nodeName !== node), 'the group moved off the lost node');
      } finally {
        if (what.includes('NotReady')) await kubectl(ctx.cluster, 'label', 'node', node, 'node-not-ready.stage.kwok.x-k8s.io-');
        if (what.includes('gone')) await ctx.core.createNode({ body: gpuNode({ name: node, gpus: 8, product: 'NVIDIA-H100-80GB-HBM3', domain: clique }) });
      }
    });
  });

  it('stops a group that keeps failing at maxGroupRestarts, marks it Failed, and keeps the others serving', async () => {
    await createBd(ctx, testDeployment('flaky', {
      replicas: 1, tensorParallelSize: 2, worker: { image: 'bloom.test/never-ready' },
      failurePolicy: { ...fastPolicy, startupTimeoutSeconds: 2, maxGroupRestarts: 2, backoffSeconds: 1, maxBackoffSeconds: 2 },
    }));
    const failed = await waitForBd(ctx, 'flaky', 'group Failed', (b) => b.status?.groups?.[0]?.phase === 'Failed', 120_000);
    const group = failed.status!.groups![0]!;
    assert.equal(group.restarts, 2);
    assert.equal(group.epoch, 3);
    assert.match(group.message ?? '', /StartupTimeout.*gave up after 2 restarts within 3600s \(maxGroupRestarts=2\)/);
    assert.equal(failed.status?.phase, 'Failed');
    assert.equal(failed.status?.conditions?.find((c) => c.type === 'Degraded')?.status, 'True');
    await waitFor('the failed group frees its GPUs', async () => (await podsOf(ctx, 'flaky')).length === 0, 30_000);
    const events = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=flaky' });
    assert.ok(events.items.some((e) => e.reason === 'GroupFailed' && e.type === 'Warning' && /maxGroupRestarts=2/.test(e.message ?? '')));
    assert.equal(events.items.filter((e) => e.reason === 'GroupRestarting').length, 2);
    assert.ok(allReady(3)(await getBd(ctx, 'chat')), 'the other deployment keeps serving');

    await kubectl(ctx.cluster, '-n', ctx.namespace, 'annotate', 'bd/flaky', 'inference.bloom.dev/reset-restarts=1');
    await waitForBd(ctx, 'flaky', 'revived by the reset annotation', (b) => b.status?.groups?.[0]?.phase !== 'Failed' && (b.status?.groups?.[0]?.epoch ?? 0) > 3);
  });
});
