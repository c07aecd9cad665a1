import assert from 'node:assert/strict';
import { LABELS } from '../../operator/src/groups/labels.js';
import { useE2e } from './fixture.js';
import { createBd, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

describe('gang placement: the operator picks a domain with room for the whole group', function () {
  const ctx = useE2e('place');
  useOperator(ctx);

  it('fills 8-GPU nodes with TP=4 groups without any placement stall', async () => {
    // 10 groups of 4 ranks on 8-GPU nodes: each node fits exactly two groups, and
    // the stall detector is switched off, so one mis-placed first rank would hang.
    await createBd(ctx, testDeployment('dense', { replicas: 10, tensorParallelSize: 4, failurePolicy: { placementTimeoutSeconds: 3600 } }));
    const bd = await waitForBd(ctx, 'dense', '10 ready groups', (b) => b.status?.readyReplicas === 10, 120_000);
    assert.ok((bd.status?.groups ?? []).every((g) => g.restarts === 0), 'no group had to be recreated');
    const pods = await podsOf(ctx, 'dense');
    for (let g = 0; g < 10; g++) {
      const ranks = pods.filter((p) => p.metadata?.labels?.[LABELS.group] === String(g));
      assert.equal(new Set(ranks.map((p) => p.spec?.nodeName)).size, 1, `group ${g} on one node`);
      assert.equal(ranks[0]!.metadata?.labels?.[LABELS.domain], ranks[0]!.spec?.nodeName, 'pinned to the domain the operator chose');
    }
  });
});
