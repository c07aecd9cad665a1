import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { GANG_SCHEDULING_GATE } from '../../operator/src/groups/pod.js';
import { INVALID_MANIFESTS } from '../fixtures/invalid-manifests.js';
import { CLIENTS } from '../cluster/pki.js';
import { waitFor } from '../cluster/processes.js';
import { writesBy } from './audit.js';
import { useE2e } from './fixture.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { createBd, customObjects, envOf, getBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BloomDeployment operator on a real control plane', function () {
  const ctx = useE2e('op');
  const operator = useOperator(ctx);

  it('runs a 2-replica TP=8 deployment as two 8-GPU pods (one per group, each on its own node), wired for a local rendezvous', async () => {
    await createBd(ctx, testDeployment('llm', { replicas: 2 }));
    const bd = await waitForBd(ctx, 'llm', '2 ready groups', (b) => b.status?.readyReplicas === 2);
    assert.equal(bd.status?.conditions?.find((c) => c.type === 'Available')?.status, 'True');
    assert.equal(bd.status?.phase, 'Available');
    assert.equal(bd.status?.observedGeneration, bd.metadata.generation);
    assert.equal(bd.status?.selector, `${LABELS.deployment}=llm,${LABELS.pod}=0`);
    assert.deepEqual([bd.status?.podsPerGroup, bd.status?.gpusPerPod], [1, 8]);
    for (const g of bd.status?.groups ?? []) assert.deepEqual([g.readyPods, g.readyRanks, g.leaderAddress], [1, 8, '127.0.0.1']);

    const pods = await podsOf(ctx, 'llm');
    assert.equal(pods.length, 2);
    for (const [group, pod] of [0, 1].map((g) => [g, pods.find((p) => p.metadata?.labels?.[LABELS.group] === String(g))!] as const)) {
      assert.match(pod.spec!.nodeName!, /^gpu-node-\d+$/);
      assert.equal(pod.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'], '8', 'all 8 GPUs of the group in one container (NVLink)');
      const env = envOf(pod);
      assert.deepEqual([env.WORLD_SIZE, env.NNODES, env.NODE_RANK, env.NPROC_PER_NODE, env.MASTER_ADDR, env.PET_NPROC_PER_NODE], ['8', '1', '0', '8', '127.0.0.1', '8']);
      assert.equal(env.RANK, undefined, 'RANK is set per process by the pod\'s launcher');
      assert.equal(env.BLOOM_GROUP, String(group));
      assert.equal(env.BLOOM_EPOCH, '1');
      assert.equal(pod.spec?.hostname, `llm-g${group}-p0`);
      assert.deepEqual(pod.spec?.schedulingGates ?? [], [], 'a single-pod group is never gated');
      assert.equal(pod.status?.phase, 'Running');
      const svc = await ctx.core.readNamespacedService({ name: `llm-g${group}`, namespace: ctx.namespace });
      assert.equal(svc.spec?.clusterIP, 'None');
    }
    assert.notEqual(pods[0]!.spec!.nodeName, pods[1]!.spec!.nodeName);
    const client = await ctx.core.readNamespacedService({ name: 'llm', namespace: ctx.namespace });
    assert.deepEqual(client.spec?.selector, { [LABELS.deployment]: 'llm', [LABELS.pod]: '0' });
    const printed = await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', 'bd', 'llm');
    assert.match(printed, /NAME\s+REPLICAS\s+READY\s+TP\s+PODS\s+GPUS\/POD\s+PHASE/);
    assert.match(printed, /llm\s+2\s+2\s+8\s+1\s+8\s+Available/);
  });

  it('runs TP=8 as 2 pods x 4 GPUs: each group on two distinct nodes of one NVLink clique, rendezvous at pod 0\'s DNS name', async () => {
    await createBd(ctx, testDeployment('nvl', { replicas: 2, ...multiPodSpec(8, 4) }));
    const bd = await waitForBd(ctx, 'nvl', '2 ready groups', (b) => b.status?.readyReplicas === 2);
    assert.deepEqual([bd.status?.podsPerGroup, bd.status?.gpusPerPod], [2, 4]);
    const pods = await podsOf(ctx, 'nvl');
    assert.equal(pods.length, 4);
    const cliqueOf = new Map((await ctx.core.listNode()).items.map((n) => [n.metadata!.name!, n.metadata!.labels![NVLINK_DOMAIN_LABEL]]));
    for (const group of [0, 1]) {
      const members = pods.filter((p) => p.metadata?.labels?.[LABELS.group] === String(group)).sort((a, b) => a.metadata!.name! < b.metadata!.name! ? -1 : 1);
      assert.equal(members.length, 2);
      assert.equal(new Set(members.map((p) => p.spec?.nodeName)).size, 2, `group ${group}: distinct nodes`);
      assert.equal(new Set(members.map((p) => cliqueOf.get(p.spec!.nodeName!))).size, 1, `group ${group}: one clique`);
      const master = `nvl-g${group}-p0.nvl-g${group}.${ctx.namespace}.svc.cluster.local`;
      members.forEach((pod, index) => {
        const env = envOf(pod);
        assert.deepEqual([env.WORLD_SIZE, env.NNODES, env.NODE_RANK, env.NPROC_PER_NODE, env.MASTER_ADDR], ['8', '2', String(index), '4', master]);
        assert.equal(pod.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'], '4');
        assert.equal(`${pod.spec?.hostname}.${pod.spec?.subdomain}.${ctx.namespace}.svc.cluster.local`, `nvl-g${group}-p${index}.nvl-g${group}.${ctx.namespace}.svc.cluster.local`);
      });
      assert.equal(bd.status?.groups?.find((g) => g.index === group)?.leaderAddress, master);
      assert.deepEqual((bd.status?.groups ?? []).map((g) => [g.readyPods, g.readyRanks]), [[2, 8], [2, 8]]);
    }
    await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name: 'nvl' });
    await waitFor('nvl pods gone', async () => (await podsOf(ctx, 'nvl')).length === 0, 90_000);
  });

  it('never binds an 8-GPU pod to a node with 7 free GPUs (the real scheduler fits the whole pod on one node)', async () => {
    const used = new Set((await ctx.core.listPodForAllNamespaces()).items.map((p) => p.spec?.nodeName).filter((n) => n !== undefined));
    const node = (await ctx.core.listNode({ labelSelector: 'type=kwok' })).items.map((n) => n.metadata!.name!).sort().find((n) => !used.has(n));
    assert.ok(node, 'a node without pods');
    const hog = { metadata: { name: 'one-gpu' }, spec: { nodeSelector: { 'kubernetes.io/hostname': node }, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }] } };
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: hog });
    await waitFor('the 1-GPU pod bound', async () => (await ctx.core.readNamespacedPod({ name: 'one-gpu', namespace: ctx.namespace })).spec?.nodeName === node, 60_000);
    await createBd(ctx, testDeployment('tight', { placement: { nodeSelector: { 'kubernetes.io/hostname': node } } }));
    await waitFor('the scheduler to refuse the 8-GPU pod', async () => {
      const [pod] = await podsOf(ctx, 'tight');
      const scheduled = pod?.status?.conditions?.find((c) => c.type === 'PodScheduled');
      return scheduled?.status === 'False' && scheduled.reason === 'Unschedulable' && /Insufficient nvidia.com\/gpu/.test(scheduled.message ?? '');
    }, 60_000);
    await sleep(2000);
    assert.equal((await podsOf(ctx, 'tight'))[0]?.spec?.nodeName, undefined, 'still unbound');
    await ctx.core.deleteNamespacedPod({ name: 'one-gpu', namespace: ctx.namespace, gracePeriodSeconds: 0 });
    await waitForBd(ctx, 'tight', 'ready once the node has 8 free GPUs', (b) => b.status?.readyReplicas === 1, 120_000);
    assert.equal((await podsOf(ctx, 'tight'))[0]?.spec?.nodeName, node);
    await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name: 'tight' });
    await waitFor('tight pods gone', async () => (await podsOf(ctx, 'tight')).length === 0, 90_000);
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
    assert.equal((await podsOf(ctx, 'llm')).filter((p) => !p.metadata?.deletionTimestamp).length, 3);
    const scale = JSON.parse(await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', '--raw', `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ctx.namespace}/${PLURAL}/llm/scale`));
    assert.equal(scale.status.replicas, 3);
    assert.equal(scale.status.selector, `${LABELS.deployment}=llm,${LABELS.pod}=0`);

    await kubectl(ctx.cluster, '-n', ctx.namespace, 'scale', 'bd/llm', '--replicas=1');
    await waitForBd(ctx, 'llm', '1 group', (b) => b.status?.replicas === 1 && b.status.readyReplicas === 1);
    await waitFor('pods of groups 1 and 2 gone', async () => (await podsOf(ctx, 'llm')).length === 1, 60_000);
    const left = await podsOf(ctx, 'llm');
    assert.deepEqual([...new Set(left.map((p) => p.metadata?.labels?.[LABELS.group]))], ['0']);
    await assert.rejects(ctx.core.readNamespacedService({ name: 'llm-g2', namespace: ctx.namespace }), (e: { code?: number }) => e.code === 404);
  });

  it('admits a multi-pod group all-or-nothing: its pods stay gated and hold no GPU until every pod exists', async () => {
    // llm's one pod + 1 of gated's 2 pods (TP=8 as 2 pods x 4 GPUs)
    await ctx.core.createNamespacedResourceQuota({ namespace: ctx.namespace, body: { metadata: { name: 'pods' }, spec: { hard: { pods: '2' } } } });
    await createBd(ctx, testDeployment('gated', multiPodSpec(8, 4)));
    await waitFor('1 of 2 pods created (quota)', async () => (await podsOf(ctx, 'gated')).length === 1, 60_000);
    await sleep(2000);
    const partial = await podsOf(ctx, 'gated');
    assert.equal(partial.length, 1);
    for (const pod of partial) {
      assert.deepEqual(pod.spec?.schedulingGates?.map((g) => g.name), [GANG_SCHEDULING_GATE]);
      assert.equal(pod.spec?.nodeName, undefined, `${pod.metadata?.name} holds no node`);
    }
    await ctx.core.deleteNamespacedResourceQuota({ name: 'pods', namespace: ctx.namespace });
    await waitForBd(ctx, 'gated', 'group ready after the quota is lifted', (b) => b.status?.readyReplicas === 1, 180_000);
    const pods = await podsOf(ctx, 'gated');
    assert.equal(pods.length, 2);
    assert.equal(new Set(pods.map((p) => p.spec?.nodeName)).size, 2, 'one node per pod');
  });

  it('lifts only its own gate: a scheduling gate another controller adds at admission stays', async () => {
    const foreign = 'example.com/foreign-admission';
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1beta1', kind: 'MutatingAdmissionPolicy', metadata: { name: `foreign-gate-${ctx.namespace}` },
      spec: {
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] },
        matchConditions: [{ name: 'this-test', expression: `object.metadata.namespace == '${ctx.namespace}' && has(object.metadata.labels) && object.metadata.labels[?'${LABELS.deployment}'].orValue('') == 'foreign'` }],
        failurePolicy: 'Fail', reinvocationPolicy: 'Never',
        mutations: [{ patchType: 'JSONPatch', jsonPatch: { expression: `[JSONPatch{op: 'add', path: '/spec/schedulingGates/-', value: Object.spec.schedulingGates{name: '${foreign}'}}]` } }],
      },
    };
    const binding = { apiVersion: 'admissionregistration.k8s.io/v1beta1', kind: 'MutatingAdmissionPolicyBinding', metadata: { name: policy.metadata.name }, spec: { policyName: policy.metadata.name } };
    const file = join(ctx.cluster.stateDir, `${policy.metadata.name}.json`);
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [policy, binding] }));
    await kubectl(ctx.cluster, 'apply', '-f', file);
    try {
      await waitFor('the policy to act on new pods', async () => {
        const probe = { metadata: { name: `probe-${Date.now()}`, labels: { [LABELS.deployment]: 'foreign' } }, spec: { schedulingGates: [{ name: 'x/probe' }], containers: [{ name: 'c', image: 'x' }] } };
        const created = await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: probe });
        await ctx.core.deleteNamespacedPod({ name: created.metadata!.name!, namespace: ctx.namespace, gracePeriodSeconds: 0 });
        return (created.spec?.schedulingGates ?? []).some((g) => g.name === foreign);
      }, 30_000, 500);
      await createBd(ctx, testDeployment('foreign', multiPodSpec(8, 4)));
      const gates = async () => (await podsOf(ctx, 'foreign')).sort((x, y) => (x.metadata!.name! < y.metadata!.name! ? -1 : 1)).map((p) => p.spec?.schedulingGates?.map((g) => g.name) ?? []);
      // The operator chooses the group's clique and lifts its own gate from both pods, pinning them there; the foreign gate stays.
      await waitFor('the operator to lift its own gates', async () => JSON.stringify(await gates()) === JSON.stringify([[foreign], [foreign]]), 60_000);
      await sleep(2000);
      const held = await podsOf(ctx, 'foreign');
      assert.deepEqual(held.map((p) => p.spec?.schedulingGates?.map((g) => g.name)), [[foreign], [foreign]], 'the foreign gate stays');
      for (const pod of held) assert.equal(pod.spec?.nodeName, undefined, 'held by the other controller');
      const pins = held.map((p) => p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchExpressions?.[0]?.values?.[0]);
      assert.ok(pins[0] !== undefined && pins[0] === pins[1], `both pods pinned to one clique (${pins.join(', ')})`);
      // the other controller admits them: they are scheduled into that clique
      const removeFirstGate = (name: string) => kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', 'pod', name, '--type', 'json', '-p', '[{"op":"remove","path":"/spec/schedulingGates/0"}]');
      await removeFirstGate('foreign-g0-p0-e1');
      await removeFirstGate('foreign-g0-p1-e1');
      await waitForBd(ctx, 'foreign', 'Ready once the foreign gate is lifted', (b) => b.status?.readyReplicas === 1, 60_000);
    } finally {
      await kubectl(ctx.cluster, 'delete', '-f', file, '--ignore-not-found').catch(() => {});
      await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name: 'foreign' }).catch(() => {});
      await waitFor('foreign pods gone', async () => (await podsOf(ctx, 'foreign')).length === 0, 90_000);
    }
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
