import assert from 'node:assert/strict';
import { LABELS } from '../../operator/src/groups/labels.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e } from './fixture.js';
import { createBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';
import { readyGroupCount, watchInvariant } from './observe.js';

describe('node drains go through the operator, group by group, within the rollout budget', function () {
  const ctx = useE2e('drain');
  useOperator(ctx);
  let drained = '';

  after(async () => {
    if (drained) await kubectl(ctx.cluster, 'uncordon', drained).catch(() => {});
  });

  it('refuses to evict a pod of a serving group (one PodDisruptionBudget per group)', async () => {
    // TP=4 as 2 pods x 2 GPUs in one clique: the budget counts pods
    await createBd(ctx, testDeployment('kept', { replicas: 2, ...multiPodSpec(4, 2, { exclusive: true }) }));
    await waitForBd(ctx, 'kept', 'ready', (b) => b.status?.readyReplicas === 2);
    const pdb = JSON.parse(await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', 'pdb', 'kept-g0', '-o', 'json'));
    assert.equal(pdb.spec.minAvailable, 2);
    await waitFor('the disruption controller to count the group', async () => {
      const status = JSON.parse(await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', 'pdb', 'kept-g0', '-o', 'json')).status;
      return status?.observedGeneration === 1 && status.currentHealthy === 2 && status.disruptionsAllowed === 0;
    }, 30_000);
    const rank = (await podsOf(ctx, 'kept', { [LABELS.group]: '0' }))[0]!;
    await assert.rejects(
      ctx.core.createNamespacedPodEviction({ name: rank.metadata!.name!, namespace: ctx.namespace, body: { metadata: { name: rank.metadata!.name!, namespace: ctx.namespace } } }),
      (e: { code?: number }) => e.code === 429,
    );
  });

  it('completes kubectl drain by replacing the group on the drained node (surge first): never fewer than 2 ready groups', async () => {
    const podsPerGroup = 2;
    const node = (await podsOf(ctx, 'kept', { [LABELS.group]: '0' }))[0]!.spec!.nodeName!;
    drained = node;
    // Only this deployment's pods: other test files' bare pods may share the node (the cluster is shared per run).
    const drain = kubectl(ctx.cluster, 'drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=150s', `--pod-selector=${LABELS.deployment}=kept`);
    const { samples, violations } = await watchInvariant(ctx, 'kept', (pods) => {
      const ready = readyGroupCount(pods, podsPerGroup);
      return ready < 2 ? `only ${ready} ready group(s)` : undefined;
    }, drain);
    await drain;
    assert.ok(samples > 5);
    assert.deepEqual(violations, [], 'the drain never took a group below the budget (maxUnavailable 0)');
    const bd = await waitForBd(ctx, 'kept', 'two ready groups again', (b) => b.status?.readyReplicas === 2 && b.status.replicas === 2);
    const pods = (await podsOf(ctx, 'kept')).filter((p) => !p.metadata?.deletionTimestamp);
    assert.equal(pods.length, 2 * podsPerGroup);
    assert.ok(pods.every((p) => p.spec?.nodeName !== node), 'no pod left on the drained node');
    const events = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=kept' });
    assert.ok(events.items.some((e) => e.reason === 'GroupRemoved' && /cordoned/.test(e.message ?? '')), 'the old group was removed because its node was cordoned');
    assert.ok((bd.status?.groups ?? []).every((g) => g.phase === 'Ready'));
  });
});
