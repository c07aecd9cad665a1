import assert from 'node:assert/strict';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { useE2e } from './fixture.js';
import { createBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';
import { readyGroupCount, watchInvariant } from './observe.js';

const rolledOut = (replicas: number) => (b: BloomDeployment) =>
  b.status?.updatedReplicas === replicas && b.status.readyReplicas === replicas && b.status.replicas === replicas
  && b.status.currentRevision === b.status.updateRevision && (b.status.groups ?? []).length === replicas;

describe('rolling updates by whole groups', function () {
  const ctx = useE2e('roll');
  useOperator(ctx);

  async function rollout(name: string, replicas: number, rollout: { maxSurge: number; maxUnavailable: number }, minReady: number) {
    // TP=4 as 2 pods x 2 GPUs: a rollout replaces whole multi-pod groups
    const podsPerGroup = 2;
    await createBd(ctx, testDeployment(name, { replicas, ...multiPodSpec(4, 2), rollout }));
    const before = await waitForBd(ctx, name, 'ready', rolledOut(replicas));
    const image = 'ghcr.io/bloom-operator/worker:v2';
    const done = (async () => {
      await kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', `bd/${name}`, '--type', 'merge', '-p', JSON.stringify({ spec: { worker: { image } } }));
      return waitForBd(ctx, name, 'rolled out', (b) => rolledOut(replicas)(b) && b.status?.updateRevision !== before.status?.updateRevision, 180_000);
    })();
    const { samples, violations } = await watchInvariant(ctx, name, (pods) => {
      const ready = readyGroupCount(pods, podsPerGroup);
      return ready < minReady ? `only ${ready} ready group(s)` : undefined;
    }, done);
    const after = await done;
    assert.ok(samples >= replicas * podsPerGroup * 3, `observed ${samples} pod events`);
    assert.deepEqual(violations, [], `at every observed moment at least ${minReady} group(s) ready`);
    const pods = (await podsOf(ctx, name)).filter((p) => !p.metadata?.deletionTimestamp);
    assert.equal(pods.length, replicas * podsPerGroup);
    assert.ok(pods.every((p) => p.spec?.containers[0]?.image === image), 'every pod runs the new image');
    assert.notEqual(after.status?.currentRevision, before.status?.currentRevision);
    const events = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: `involvedObject.name=${name}` });
    assert.ok(events.items.some((e) => e.reason === 'RolloutComplete'));
  }

  it('replicas=3, maxUnavailable=1: at least 2 groups ready at every observed moment', () => rollout('three', 3, { maxSurge: 0, maxUnavailable: 1 }, 2));

  it('replicas=1, maxSurge=1: never 0 ready groups', () => rollout('single', 1, { maxSurge: 1, maxUnavailable: 0 }, 1));
});
