import assert from 'node:assert/strict';
import { LABELS } from '../../operator/src/groups/labels.js';
import { useE2e } from './fixture.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { createBd, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

describe('gang placement (SchedulingGates): each group pinned to a clique with room for it', function () {
  const ctx = useE2e('place');
  useOperator(ctx);

  it('fills NVLink cliques with 2-pod groups (4 GPUs per pod) without any placement stall', async () => {
    // 6 groups of 2 pods x 4 GPUs on cliques of two 8-GPU nodes: each clique fits exactly two groups,
    // and the stall detector is switched off, so one mis-placed first pod would hang.
    const groups = 6;
    await createBd(ctx, testDeployment('dense', { replicas: groups, ...multiPodSpec(8, 4), failurePolicy: { placementTimeoutSeconds: 3600 } }));
    const bd = await waitForBd(ctx, 'dense', `${groups} ready groups`, (b) => b.status?.readyReplicas === groups, 120_000);
    assert.ok((bd.status?.groups ?? []).every((g) => g.restarts === 0), 'no group had to be recreated');
    const pods = await podsOf(ctx, 'dense');
    const nodes = new Map((await ctx.core.listNode()).items.map((n) => [n.metadata!.name!, n.metadata!.labels![NVLINK_DOMAIN_LABEL]]));
    for (let g = 0; g < groups; g++) {
      const members = pods.filter((p) => p.metadata?.labels?.[LABELS.group] === String(g));
      assert.equal(members.length, 2);
      assert.equal(new Set(members.map((p) => p.spec?.nodeName)).size, 2, `group ${g}: its pods on distinct nodes`);
      const cliques = new Set(members.map((p) => nodes.get(p.spec!.nodeName!)));
      assert.equal(cliques.size, 1, `group ${g} inside one clique`);
      const [clique] = [...cliques];
      for (const pod of members) {
        assert.deepEqual(JSON.parse(JSON.stringify(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? null)),
          [{ matchExpressions: [{ key: NVLINK_DOMAIN_LABEL, operator: 'In', values: [clique] }] }], 'pinned to its clique, not to a node');
      }
    }
  });
});
