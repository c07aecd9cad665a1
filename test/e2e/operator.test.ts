import assert from 'node:assert/strict';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { GANG_SCHEDULING_GATE } from '../../operator/src/groups/pod.js';
import { INVALID_MANIFESTS } from '../fixtures/invalid-manifests.js';
import { CLIENTS } from '../cluster/pki.js';
import { waitFor } from '../cluster/processes.js';
import { writesBy } from './audit.js';
import { useE2e } from './fixture.js';
import { createBd, customObjects, envOf, getBd, kubectl, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BloomDeployment operator on a real control plane', function () {
  const ctx = useE2e('op');
  const operator = useOperator(ctx);

  it('runs a 2-replica TP=8 deployment as 16 rank pods wired for NCCL, one node per group', async () => {
    await createBd(ctx, testDeployment('llm', { replicas: 2 }));
    const bd = await waitForBd(ctx, 'llm', '2 ready groups', (b) => b.status?.readyReplicas === 2);
    assert.equal(bd.status?.conditions?.find((c) => c.type === 'Available')?.status, 'True');
    assert.equal(bd.status?.phase, 'Available');
    assert.equal(bd.status?.observedGeneration, bd.metadata.generation);
    assert.equal(bd.status?.selector, `${LABELS.deployment}=llm,${LABELS.rank}=0`);

    const pods = await podsOf(ctx, 'llm');
    assert.equal(pods.length, 16);
    for (const group of [0, 1]) {
      const ranks = pods.filter((p) => p.metadata?.labels?.[LABELS.group] === String(group));
      assert.equal(ranks.length, 8);
      assert.equal(new Set(ranks.map((p) => p.spec?.nodeName)).size, 1, `group ${group} packed on one node`);
      assert.match(ranks[0]!.spec!.nodeName!, /^gpu-node-\d+$/);
      const master = `llm-g${group}-r0.llm-g${group}.${ctx.namespace}.svc.cluster.local`;
      const envs = ranks.map(envOf);
      assert.deepEqual(envs.map((e) => Number(e.RANK)).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
      for (const [i, env] of envs.entries()) {
        assert.equal(env.WORLD_SIZE, '8');
        assert.equal(env.MASTER_ADDR, master);
        assert.equal(env.BLOOM_GROUP, String(group));
        assert.equal(env.BLOOM_EPOCH, '1');
        const pod = ranks[i]!;
        assert.equal(`${pod.spec?.hostname}.${pod.spec?.subdomain}.${ctx.namespace}.svc.cluster.local`, `llm-g${group}-r${env.RANK}.llm-g${group}.${ctx.namespace}.svc.cluster.local`);
        assert.equal(pod.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'], '1');
        assert.deepEqual(pod.spec?.schedulingGates ?? [], []);
        assert.equal(pod.status?.phase, 'Running');
      }
      const svc = await ctx.core.readNamespacedService({ name: `llm-g${group}`, namespace: ctx.namespace });
      assert.equal(svc.spec?.clusterIP, 'None');
      assert.equal(svc.spec?.publishNotReadyAddresses, true);
    }
    assert.notEqual(pods.find((p) => p.metadata?.labels?.[LABELS.group] === '0')!.spec!.nodeName,
      pods.find((p) => p.metadata?.labels?.[LABELS.group] === '1')!.spec!.nodeName);
    const client = await ctx.core.readNamespacedService({ name: 'llm', namespace: ctx.namespace });
    assert.deepEqual(client.spec?.selector, { [LABELS.deployment]: 'llm', [LABELS.rank]: '0' });
    assert.equal(bd.status?.groups?.[0]?.leaderAddress, `llm-g0-r0.llm-g0.${ctx.namespace}.svc.cluster.local`);
  });

  it('makes zero writes when reconciling an unchanged deployment, also after an operator restart', async () => {
    await waitForBd(ctx, 'llm', 'stable', (b) => b.status?.readyReplicas === 2);
    await sleep(1500);
    const since = Date.now();
    // Touch the object (a label change triggers a reconcile but changes nothing the operator owns).
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'bd/llm', 'touched=yes');
    await operator.restart();
    await sleep(3000);
    const writes = writesBy(ctx.cluster.auditLog, CLIENTS.operator.cn, since).filter((e) => e.objectRef?.namespace === ctx.namespace && e.objectRef?.resource !== 'events');
    assert.deepEqual(writes.map((w) => `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.name}`), []);
    const earlier = writesBy(ctx.cluster.auditLog, CLIENTS.operator.cn, 0).filter((e) => e.objectRef?.namespace === ctx.namespace);
    assert.ok(earlier.some((e) => e.verb === 'create' && e.objectRef?.resource === 'pods'), 'the audit log does record the operator\'s writes');
  });

  it('scales through the scale subresource (kubectl scale) by whole groups, highest index first', async () => {
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'scale', 'bd/llm', '--replicas=3');
    await waitForBd(ctx, 'llm', '3 ready groups', (b) => b.status?.readyReplicas === 3 && b.status.replicas === 3);
    assert.equal((await podsOf(ctx, 'llm')).filter((p) => !p.metadata?.deletionTimestamp).length, 24);
    const scale = JSON.parse(await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', '--raw', `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ctx.namespace}/${PLURAL}/llm/scale`));
    assert.equal(scale.status.replicas, 3);
    assert.equal(scale.status.selector, `${LABELS.deployment}=llm,${LABELS.rank}=0`);

    await kubectl(ctx.cluster, '-n', ctx.namespace, 'scale', 'bd/llm', '--replicas=1');
    await waitForBd(ctx, 'llm', '1 group', (b) => b.status?.replicas === 1 && b.status.readyReplicas === 1);
    await waitFor('pods of groups 1 and 2 gone', async () => (await podsOf(ctx, 'llm')).length === 8, 60_000);
    const left = await podsOf(ctx, 'llm');
    assert.deepEqual([...new Set(left.map((p) => p.metadata?.labels?.[LABELS.group]))], ['0']);
    await assert.rejects(ctx.core.readNamespacedService({ name: 'llm-g2', namespace: ctx.namespace }), (e: { code?: number }) => e.code === 404);
  });

  it('admits a group all-or-nothing: ranks stay gated and hold no GPU until every rank exists', async () => {
    await ctx.core.createNamespacedResourceQuota({ namespace: ctx.namespace, body: { metadata: { name: 'pods' }, spec: { hard: { pods: '13' } } } });
    await createBd(ctx, testDeployment('gated'));
    await waitFor('5 of 8 ranks created (quota)', async () => (await podsOf(ctx, 'gated')).length === 5, 60_000);
    await sleep(2000);
    const partial = await podsOf(ctx, 'gated');
    assert.equal(partial.length, 5);
    for (const pod of partial) {
      assert.deepEqual(pod.spec?.schedulingGates?.map((g) => g.name), [GANG_SCHEDULING_GATE]);
      assert.equal(pod.spec?.nodeName, undefined, `${pod.metadata?.name} holds no node`);
    }
    await ctx.core.deleteNamespacedResourceQuota({ name: 'pods', namespace: ctx.namespace });
    await waitForBd(ctx, 'gated', 'group ready after the quota is lifted', (b) => b.status?.readyReplicas === 1, 180_000);
    const pods = await podsOf(ctx, 'gated');
    assert.equal(pods.length, 8);
    assert.equal(new Set(pods.map((p) => p.spec?.nodeName)).size, 1);
  });

  it(`rejects ${INVALID_MANIFESTS.length} invalid manifests at admission with a message naming the field`, async () => {
    assert.ok(INVALID_MANIFESTS.length >= 20);
    const custom = customObjects(ctx.kc);
    for (const { name, manifest, expectField } of INVALID_MANIFESTS) {
      await assert.rejects(
        custom.createNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, body: manifest }),
        (err: { code?: number; body?: unknown }) => {
          assert.equal(err.code, 422, `${name}: expected 422, got ${err.code}: ${String(err.body)}`);
          const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
          assert.ok(body.includes(expectField), `${name}: the rejection must name ${expectField}: ${body}`);
          return true;
        },
        `${name} must be rejected`,
      );
    }
  });

  it('removes everything it created when the deployment is deleted', async () => {
    await createBd(ctx, testDeployment('doomed', { tensorParallelSize: 2, replicas: 2 }));
    await waitForBd(ctx, 'doomed', 'ready', (b) => b.status?.readyReplicas === 2);
    await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name: 'doomed' });
    await waitFor('pods and services of doomed garbage-collected', async () => {
      const pods = await podsOf(ctx, 'doomed');
      const services = await ctx.core.listNamespacedService({ namespace: ctx.namespace, labelSelector: `${LABELS.deployment}=doomed` });
      return pods.length === 0 && services.items.length === 0;
    }, 90_000);
    await assert.rejects(getBd(ctx, 'doomed'), (e: { code?: number }) => e.code === 404);
  });
});
