import assert from 'node:assert/strict';
import { POD_GROUP_API } from '../../operator/src/groups/gang.js';
import { useE2e } from './fixture.js';
import { assertGroupsInOneClique, cliqueOfNodes, exactFitAtOnce, occupy } from './gang-harness.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { createBd, customObjects, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';
import { waitFor } from '../cluster/processes.js';

/** Foreign 4-GPU pods on one node of three of the four cliques: those fit one 2 x 4-GPU group each, the fourth two. */
const FOREIGN_NODES = ['gpu-node-0', 'gpu-node-2', 'gpu-node-4'];

const cliqueOf = (cliques: Map<string, string>, pods: Array<{ spec?: { nodeName?: string } }>) => cliques.get(pods[0]?.spec?.nodeName ?? '');

async function removeAll(ctx: ReturnType<typeof useE2e>, names: string[]): Promise<void> {
  for (const name of names) await kubectl(ctx.cluster, '-n', ctx.namespace, 'delete', 'bd', name, '--ignore-not-found', '--wait=false');
  await waitFor('the groups gone', async () => (await Promise.all(names.map((n) => podsOf(ctx, n)))).every((p) => p.length === 0), 120_000);
}

describe('gang policy PodGroup: the kube-scheduler places each group whole inside one clique', function () {
  const ctx = useE2e('podgroup');
  useOperator(ctx);

  it('groups of 2 pods x 4 GPUs land inside one clique around foreign pods, none split or stalled; a PodGroup per incarnation', async () => {
    for (const node of FOREIGN_NODES) await occupy(ctx, node, 4);
    await createBd(ctx, testDeployment('gang', { replicas: 4, ...multiPodSpec(8, 4), gang: { policy: 'PodGroup' }, failurePolicy: { placementTimeoutSeconds: 3600 } }));
    const bd = await waitForBd(ctx, 'gang', '4 groups ready', (b) => b.status?.readyReplicas === 4, 180_000);
    assert.ok((bd.status?.groups ?? []).every((g) => g.restarts === 0 && (g.disruptions ?? 0) === 0), 'no group recreated: none stalled');
    await assertGroupsInOneClique(ctx, 'gang', 4);
    const { group, version, plural } = POD_GROUP_API;
    const list = await customObjects(ctx.kc).listNamespacedCustomObject({ group, version, plural, namespace: ctx.namespace }) as { items: Array<{ metadata: { name: string }; spec: { schedulingPolicy: { gang: { minCount: number } } } }> };
    assert.deepEqual(list.items.map((p) => p.metadata.name).sort(), ['gang-g0-e1', 'gang-g1-e1', 'gang-g2-e1', 'gang-g3-e1']);
    assert.ok(list.items.every((p) => p.spec.schedulingPolicy.gang.minCount === 2));
    // client-node's models lack spec.schedulingGroup: read the pods as the API server serves them.
    const raw = JSON.parse(await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', 'pods', '-l', 'inference.bloom.dev/deployment=gang', '-o', 'json')) as { items: Array<{ metadata: { labels: Record<string, string> }; spec: { schedulingGroup?: { podGroupName?: string } } }> };
    assert.equal(raw.items.length, 8);
    for (const pod of raw.items) assert.equal(pod.spec.schedulingGroup?.podGroupName, `gang-g${pod.metadata.labels['inference.bloom.dev/group']}-e1`);
    await removeAll(ctx, ['gang']);
    await waitFor('the PodGroups gone with their pods', async () => ((await customObjects(ctx.kc).listNamespacedCustomObject({ group, version, plural, namespace: ctx.namespace })) as { items: unknown[] }).items.length === 0, 30_000);
  });

  it('6 deployments x 2 multi-pod groups applied at once on an exact fit: every group Ready at epoch 1', async () => {
    await exactFitAtOnce(ctx, { policy: 'PodGroup' }, 'fit');
  });
});

describe('gang policy SchedulingGates: a domain chosen from the cluster-wide view and one ledger, placement never charged', function () {
  const ctx = useE2e('gates');
  useOperator(ctx);

  it('two deployments created at once, around foreign pods: every group pinned to a clique with room and whole in it, never stalled or recreated', async () => {
    for (const node of FOREIGN_NODES) await occupy(ctx, node, 4);
    const spec = { replicas: 2, ...multiPodSpec(8, 4), failurePolicy: { placementTimeoutSeconds: 10, backoffSeconds: 1, maxBackoffSeconds: 2 } };
    await Promise.all(['left', 'right'].map((name) => createBd(ctx, testDeployment(name, spec))));
    const ready = await Promise.all(['left', 'right'].map((name) => waitForBd(ctx, name, '2 groups ready', (b) => b.status?.readyReplicas === 2, 120_000)));
    const groups = ready.flatMap((b) => b.status?.groups ?? []);
    assert.deepEqual(groups.map((g) => [g.epoch, g.restarts, g.disruptions ?? 0]), groups.map(() => [1, 0, 0]), 'no group stalled, recreated or charged');
    for (const name of ['left', 'right']) await assertGroupsInOneClique(ctx, name, 2);
    const cliques = await cliqueOfNodes(ctx);
    for (const pod of [...await podsOf(ctx, 'left'), ...await podsOf(ctx, 'right')]) {
      const terms: unknown = JSON.parse(JSON.stringify(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? null));
      assert.deepEqual(terms, [{ matchExpressions: [{ key: NVLINK_DOMAIN_LABEL, operator: 'In', values: [cliques.get(pod.spec!.nodeName!)] }] }], `${pod.metadata?.name}: pinned to its clique, never to a node`);
    }
    await removeAll(ctx, ['left', 'right']);
  });

  it('6 deployments x 2 multi-pod groups applied at once on an exact fit: every group Ready at epoch 1', async () => {
    await exactFitAtOnce(ctx, {}, 'fit');
  });

  it('a group waits gated, holding no GPU, while no clique has room for it, and is placed once room frees; never charged', async () => {
    for (const node of ['gpu-node-0', 'gpu-node-2', 'gpu-node-4', 'gpu-node-6']) await occupy(ctx, node, 8);
    await createBd(ctx, testDeployment('waits', { replicas: 1, ...multiPodSpec(8, 4) }));
    const waiting = await waitForBd(ctx, 'waits', 'waiting for room', (b) => /waiting for room: no nvidia.com\/gpu.clique domain has 2 schedulable nodes/.test(b.status?.groups?.[0]?.message ?? ''), 60_000);
    assert.equal(waiting.status?.groups?.[0]?.phase, 'Pending');
    const pods = await podsOf(ctx, 'waits');
    assert.ok(pods.length === 2 && pods.every((p) => (p.spec?.schedulingGates ?? []).length > 0 && !p.spec?.nodeName), 'both pods gated, none bound');
    await ctx.core.deleteNamespacedPod({ name: 'foreign-gpu-node-2', namespace: ctx.namespace, gracePeriodSeconds: 0 });
    const placed = await waitForBd(ctx, 'waits', 'placed once a clique has room', (b) => b.status?.readyReplicas === 1, 60_000);
    assert.deepEqual([placed.status?.groups?.[0]?.epoch, placed.status?.groups?.[0]?.restarts, placed.status?.groups?.[0]?.disruptions ?? 0], [1, 0, 0]);
    await assertGroupsInOneClique(ctx, 'waits', 1);
    assert.equal(cliqueOf(await cliqueOfNodes(ctx), await podsOf(ctx, 'waits')), (await cliqueOfNodes(ctx)).get('gpu-node-2'));
    await removeAll(ctx, ['waits']);
  });
});
