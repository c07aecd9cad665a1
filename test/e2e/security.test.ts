/**
 * Security of the serving path on the real control plane: the rank pods pass the API server's own
 * PodSecurity admission at the `restricted` level; a user override that violates it is reported
 * (Warning event, ReplicaFailure) naming the violation; every group gets a NetworkPolicy that selects
 * exactly its pods and names the ports of the rendered pods (no CNI here: enforcement is not claimed);
 * the chart's ValidatingAdmissionPolicy warns about hostPath model sources.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { LABELS, selectorString } from '../../operator/src/groups/labels.js';
import { NETWORK_POLICY_RESOURCE, type NetworkPolicy } from '../../operator/src/groups/network-policy.js';
import { repoRoot, toolPath } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, customObjects, getBd, kubectl, multiPodSpec, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';

const run = promisify(execFile);
const IMAGE_MODEL = { model: { source: { image: { reference: 'registry.example/models/bloom-int8-tp8:v1' } } } };
const readyGroups = (n: number) => (bd: BloomDeployment) => (bd.status?.groups ?? []).filter((g) => g.phase === 'Ready').length === n;

async function policiesOf(ctx: E2eContext, bd: string): Promise<NetworkPolicy[]> {
  const list = await customObjects(ctx.kc).listNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace: ctx.namespace, labelSelector: `${LABELS.deployment}=${bd}` });
  return (list as { items: NetworkPolicy[] }).items;
}

const containerPort = (pod: V1Pod, name: string) => pod.spec!.containers[0]!.ports!.find((p) => p.name === name)!.containerPort;

describe('security: restricted pods, a NetworkPolicy per group, admission warnings', function () {
  const ctx = useE2e('sec');
  useOperator(ctx);

  before(async () => {
    await kubectl(ctx.cluster, 'label', 'namespace', ctx.namespace, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/enforce-version=latest');
  });

  it('runs a deployment to Ready in a namespace that enforces the restricted Pod Security Standard', async () => {
    await createBd(ctx, testDeployment('locked', IMAGE_MODEL));
    const bd = await waitForBd(ctx, 'locked', 'Ready', (b) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false, 90_000);
    assert.equal(bd.status?.conditions?.find((c) => c.type === 'ReplicaFailure'), undefined);
    const [pod] = await podsOf(ctx, 'locked');
    assert.equal(pod!.spec?.securityContext?.runAsNonRoot, true);
    assert.equal(pod!.spec?.containers[0]!.securityContext?.readOnlyRootFilesystem, true);
  });

  it('reports a user override that violates it: a Warning event and ReplicaFailure naming the PodSecurity violation', async () => {
    await createBd(ctx, testDeployment('rooted', { ...IMAGE_MODEL, worker: { image: 'ghcr.io/bloom-operator/worker:test', podSecurityContext: { runAsUser: 0 } } }));
    const bd = await waitForBd(ctx, 'rooted', 'ReplicaFailure', (b) => b.status?.conditions?.some((c) => c.type === 'ReplicaFailure') ?? false, 60_000);
    const failure = bd.status!.conditions!.find((c) => c.type === 'ReplicaFailure')!;
    assert.equal(failure.reason, 'FailedCreate');
    assert.match(failure.message, /createPod Pod rooted-g0-p0-e1: .*violates PodSecurity "restricted:latest": runAsUser=0/);
    const events = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=rooted,reason=FailedCreate' });
    assert.ok(events.items.some((e) => e.type === 'Warning' && /violates PodSecurity "restricted:latest": runAsUser=0/.test(e.message ?? '')), JSON.stringify(events.items.map((e) => e.message)));
    assert.equal((await podsOf(ctx, 'rooted')).length, 0);
    assert.equal(bd.status?.groups?.[0]?.phase, 'Pending');
  });

  it('gives every group a NetworkPolicy that selects exactly its pods and names the rendered ports', async () => {
    await createBd(ctx, testDeployment('fenced', { ...IMAGE_MODEL, replicas: 2, ...multiPodSpec(16, 8) }));
    await waitForBd(ctx, 'fenced', 'two groups Ready', readyGroups(2), 90_000);
    const policies = await policiesOf(ctx, 'fenced');
    assert.deepEqual(policies.map((p) => p.metadata?.name).sort(), ['fenced-g0', 'fenced-g1']);
    const owner = (await getBd(ctx, 'fenced')).metadata.uid;
    for (const group of [0, 1]) {
      const policy = policies.find((p) => p.metadata?.name === `fenced-g${group}`)!;
      assert.equal(policy.metadata?.ownerReferences?.find((r) => r.controller)?.uid, owner);
      const selected = await ctx.core.listNamespacedPod({ namespace: ctx.namespace, labelSelector: selectorString(policy.spec!.podSelector.matchLabels!) });
      const groupPods = await podsOf(ctx, 'fenced', { [LABELS.group]: String(group) });
      assert.deepEqual(selected.items.map((p) => p.metadata?.name).sort(), groupPods.map((p) => p.metadata?.name).sort());
      assert.equal(groupPods.length, 2);
      const pod0 = groupPods.find((p) => p.metadata?.labels?.[LABELS.pod] === '0')!;
      const [min, max] = pod0.spec!.securityContext!.sysctls!.find((s) => s.name === 'net.ipv4.ip_local_port_range')!.value.split(' ').map(Number);
      const [peers, http, health] = policy.spec!.ingress!;
      assert.deepEqual(peers!.ports, [{ protocol: 'TCP', port: containerPort(pod0, 'rendezvous') }, { protocol: 'TCP', port: min, endPort: max }]);
      const peerPods = await ctx.core.listNamespacedPod({ namespace: ctx.namespace, labelSelector: selectorString(peers!.from![0]!.podSelector!.matchLabels!) });
      assert.deepEqual(peerPods.items.map((p) => p.metadata?.name).sort(), groupPods.map((p) => p.metadata?.name).sort(), 'the rendezvous is open to the group\'s own pods only');
      assert.deepEqual(http, { from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: containerPort(pod0, 'http') }] });
      assert.deepEqual(health, { from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: containerPort(pod0, 'health') }] });
    }
  });

  it('moves a group\'s policy to its new incarnation on a restart, and removes the policies with spec.network.policy None', async () => {
    const [victim] = await podsOf(ctx, 'fenced', { [LABELS.group]: '1' });
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', victim!.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true');
    await waitForBd(ctx, 'fenced', 'group 1 Ready at epoch 2', (b) => b.status?.groups?.find((g) => g.index === 1)?.epoch === 2 && readyGroups(2)(b), 90_000);
    const policy = (await policiesOf(ctx, 'fenced')).find((p) => p.metadata?.name === 'fenced-g1')!;
    assert.equal(policy.spec!.ingress![0]!.from![0]!.podSelector!.matchLabels![LABELS.epoch], '2');
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', 'bd', 'fenced', '--type=merge', '-p', JSON.stringify({ spec: { network: { policy: 'None' } } }));
    await waitFor('policies removed', async () => (await policiesOf(ctx, 'fenced')).length === 0, 30_000, 250);
  });

  it('warns at admission (the chart\'s ValidatingAdmissionPolicy) when the model source is a hostPath, and admits it', async () => {
    const { stdout: rendered } = await run(toolPath('helm'), ['template', 'sec-warn', join(repoRoot(), 'charts', 'bloom-operator'), '--show-only', 'templates/admission-policy.yaml']);
    const file = join(ctx.cluster.stateDir, `${ctx.namespace}-admission-policy.yaml`);
    writeFileSync(file, rendered);
    await kubectl(ctx.cluster, 'apply', '-f', file);
    try {
      const manifest = join(ctx.cluster.stateDir, `${ctx.namespace}-hostpath.json`);
      writeFileSync(manifest, JSON.stringify({ apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment', ...testDeployment('on-host'), metadata: { name: 'on-host', namespace: ctx.namespace } }));
      let stderr = '';
      await waitFor('a hostPath warning', async () => {
        ({ stderr } = await run(toolPath('kubectl'), ['--kubeconfig', ctx.cluster.kubeconfig, 'create', '--dry-run=server', '-f', manifest]));
        return /hostPath/.test(stderr);
      }, 30_000, 500);
      assert.match(stderr, /Warning: .*spec\.model\.source\.hostPath \(\/models\/bloom-176b-int8\) mounts a directory of the node .*Baseline and Restricted Pod Security Standards forbid hostPath volumes/);
      const image = join(ctx.cluster.stateDir, `${ctx.namespace}-image.json`);
      writeFileSync(image, JSON.stringify({ apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment', ...testDeployment('in-image', IMAGE_MODEL), metadata: { name: 'in-image', namespace: ctx.namespace } }));
      const { stderr: quiet } = await run(toolPath('kubectl'), ['--kubeconfig', ctx.cluster.kubeconfig, 'create', '--dry-run=server', '-f', image]);
      assert.doesNotMatch(quiet, /Warning/, 'an image source draws no warning');
    } finally {
      await kubectl(ctx.cluster, 'delete', '-f', file, '--ignore-not-found');
    }
  });
});
