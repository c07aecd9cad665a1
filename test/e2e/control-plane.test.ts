import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthenticationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api, VersionApi, type V1Pod } from '@kubernetes/client-node';
import { useE2e } from './fixture.js';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';
import { tokenKubeconfig } from '../cluster/kubeconfig.js';

function gpuPod(name: string, gpus: number, labels: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name, labels },
    spec: {
      containers: [{ name: 'main', image: 'busybox', resources: { limits: { 'nvidia.com/gpu': String(gpus) } } }],
      restartPolicy: 'Never',
    },
  };
}

function pinnedKubernetesVersion(): string {
  const env = readFileSync(join(repoRoot(), 'hack', 'versions.env'), 'utf8');
  const match = /^KUBERNETES_VERSION=(\S+)$/m.exec(env);
  assert.ok(match, 'KUBERNETES_VERSION in hack/versions.env');
  return match[1]!;
}

describe('local control plane (real apiserver, scheduler, controller-manager, kwok)', function () {
  const ctx = useE2e('cp');

  const podOf = (name: string) => ctx.core.readNamespacedPod({ name, namespace: ctx.namespace });

  it('reports the pinned Kubernetes version', async () => {
    const version = await ctx.kc.makeApiClient(VersionApi).getCode();
    assert.equal(version.gitVersion, pinnedKubernetesVersion());
  });

  it('binds an 8-GPU pod to a fake GPU node and runs it through kwok', async () => {
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: gpuPod('eight-gpus', 8) });
    await waitFor('pod eight-gpus Running', async () => (await podOf('eight-gpus')).status?.phase === 'Running', 60_000);
    const pod = await podOf('eight-gpus');
    const node = await ctx.core.readNode({ name: pod.spec!.nodeName! });
    assert.equal(node.status?.allocatable?.['nvidia.com/gpu'], '8');
    assert.equal(node.metadata?.labels?.['nvidia.com/gpu.product'], 'NVIDIA-H100-80GB-HBM3');
  });

  it('leaves a 9-GPU pod Pending with a FailedScheduling event', async () => {
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: gpuPod('nine-gpus', 9) });
    await waitFor('FailedScheduling event for nine-gpus', async () => {
      const events = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=nine-gpus' });
      return events.items.some((e) => e.reason === 'FailedScheduling' && /nvidia\.com\/gpu/.test(e.message ?? ''));
    }, 60_000);
    const pod = await podOf('nine-gpus');
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.spec?.nodeName, undefined);
  });

  it('garbage-collects dependents when their owner is deleted', async () => {
    const owner = await ctx.core.createNamespacedConfigMap({ namespace: ctx.namespace, body: { metadata: { name: 'owner' } } });
    await ctx.core.createNamespacedConfigMap({
      namespace: ctx.namespace,
      body: { metadata: { name: 'dependent', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }] } },
    });
    await ctx.core.deleteNamespacedConfigMap({ name: 'owner', namespace: ctx.namespace });
    await waitFor('dependent ConfigMap garbage-collected', async () => {
      const list = await ctx.core.listNamespacedConfigMap({ namespace: ctx.namespace, fieldSelector: 'metadata.name=dependent' });
      return list.items.length === 0;
    }, 60_000);
  });

  it('denies a ServiceAccount without permissions and allows it once a Role is bound', async () => {
    const ns = ctx.namespace;
    await ctx.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'reader' } } });
    const auth = await ctx.core.createNamespacedServiceAccountToken({ name: 'reader', namespace: ns, body: { spec: { audiences: [] } } });
    const kc = new KubeConfig();
    kc.loadFromString(tokenKubeconfig(ctx.cluster.server, join(ctx.cluster.pkiDir, 'ca.crt'), 'reader', auth.status!.token));
    const asReader = kc.makeApiClient(CoreV1Api);
    await assert.rejects(asReader.listNamespacedPod({ namespace: ns }), (e: { code?: number }) => e.code === 403);

    const whoami = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    assert.equal(whoami.status?.userInfo?.username, `system:serviceaccount:${ns}:reader`);

    const rbac = ctx.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] } });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: { metadata: { name: 'reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' }, subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }] },
    });
    await waitFor('the Role to take effect', async () => { await asReader.listNamespacedPod({ namespace: ns }); return true; }, 20_000);
    await assert.rejects(asReader.listNamespacedSecret({ namespace: ns }), (e: { code?: number }) => e.code === 403);
  });

  it('fails a pod labelled with the container-failed stage', async () => {
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: gpuPod('fails', 1, { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' }) });
    await waitFor('pod fails to be Failed', async () => (await podOf('fails')).status?.phase === 'Failed', 60_000);
    const status = (await podOf('fails')).status!.containerStatuses![0]!;
    assert.equal(status.state?.terminated?.exitCode, 1);
  });

  it('restarts the container of a pod labelled with the restart stage', async () => {
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: gpuPod('restarts', 1, { 'pod-container-restarted.stage.kwok.x-k8s.io': 'true' }) });
    await waitFor('a container restart', async () => (await podOf('restarts')).status?.containerStatuses?.[0]?.restartCount === 1, 60_000);
    const pod = await podOf('restarts');
    assert.equal(pod.status?.phase, 'Running');
    assert.equal(pod.status?.containerStatuses?.[0]?.lastState?.terminated?.reason, 'OOMKilled');
  });

  it('takes readiness away from a pod labelled with the not-ready stage', async () => {
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: gpuPod('unready', 1) });
    await waitFor('pod unready Running', async () => (await podOf('unready')).status?.phase === 'Running', 60_000);
    await ctx.core.patchNamespacedPod(
      { name: 'unready', namespace: ctx.namespace, body: [{ op: 'add', path: '/metadata/labels', value: { 'pod-not-ready.stage.kwok.x-k8s.io': 'true' } }] },
    );
    await waitFor('Ready=False', async () => (await podOf('unready')).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') ?? false, 60_000);
    assert.equal((await podOf('unready')).status?.phase, 'Running');
  });
});
