import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { desiredGroupNetworkPolicy, desiredGroupPods, LABELS, podRevision } from '../../operator/src/groups/index.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const CLIQUE = 'nvidia.com/gpu.clique';
const pods = (bd: BloomDeployment, epoch = 2): V1Pod[] => desiredGroupPods({ bd, group: 1, epoch, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN });
const envOf = (pod: V1Pod) => Object.fromEntries((pod.spec?.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

describe('groups: pod security (the restricted Pod Security Standard by default)', () => {
  const [pod] = pods(bloomDeployment(8));
  const container = pod!.spec!.containers[0]!;

  it('runs as the worker image\'s non-root user with the runtime\'s seccomp profile', () => {
    assert.deepEqual(pod!.spec?.securityContext, {
      runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' },
      sysctls: [{ name: 'net.ipv4.ip_local_port_range', value: '40000 44999' }],
    });
  });

  it('drops every capability, forbids privilege escalation and writes only to emptyDirs', () => {
    assert.deepEqual(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const writable = (container.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
    assert.deepEqual(writable, ['/dev/shm', '/tmp']);
    assert.deepEqual(pod!.spec?.volumes?.find((v) => v.name === 'scratch'), { name: 'scratch', emptyDir: {} });
    const env = envOf(pod!);
    assert.deepEqual([env.TMPDIR, env.HOME, env.TRITON_CACHE_DIR], ['/tmp', '/tmp', '/tmp/triton']);
    assert.ok(!pod!.spec?.volumes?.some((v) => v.hostPath), 'no hostPath unless the model source is one');
  });

  it('takes the user\'s overrides field by field, keeping the other defaults', () => {
    const bd = bloomDeployment(8, { worker: { image: 'w', podSecurityContext: { runAsUser: 0, fsGroup: 5 }, securityContext: { privileged: true, allowPrivilegeEscalation: true, capabilities: { add: ['SYS_PTRACE'] } } } });
    const [p] = pods(bd);
    assert.deepEqual(p!.spec?.securityContext?.runAsUser, 0);
    assert.deepEqual(p!.spec?.securityContext?.fsGroup, 5);
    assert.equal(p!.spec?.securityContext?.runAsNonRoot, true);
    assert.deepEqual(p!.spec?.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    assert.deepEqual(p!.spec?.containers[0]!.securityContext, { privileged: true, allowPrivilegeEscalation: true, readOnlyRootFilesystem: true, capabilities: { add: ['SYS_PTRACE'], drop: ['ALL'] } });
  });

  it('sets runtimeClassName, imagePullSecrets and extra metadata, under the operator\'s own labels', () => {
    const bd = bloomDeployment(8, { worker: { image: 'w', runtimeClassName: 'nvidia', imagePullSecrets: [{ name: 'regcred' }], podMetadata: { labels: { team: 'nlp' }, annotations: { 'cost-center': '42' } } } });
    const [p] = pods(bd);
    assert.equal(p!.spec?.runtimeClassName, 'nvidia');
    assert.deepEqual(p!.spec?.imagePullSecrets, [{ name: 'regcred' }]);
    assert.equal(p!.metadata?.labels?.team, 'nlp');
    assert.equal(p!.metadata?.labels?.[LABELS.group], '1');
    assert.equal(p!.metadata?.annotations?.['cost-center'], '42');
    assert.notEqual(podRevision(bd.spec), podRevision(bloomDeployment(8).spec), 'they shape the pods: a new revision');
  });

  it('mounts the API key read-only into pod 0 only, and never puts it in the env', () => {
    const bd = bloomDeployment(16, { placement: { topologyKey: CLIQUE }, worker: { image: 'w', apiKeySecretRef: { name: 'api', key: 'token' } } });
    const [p0, p1] = pods(bd);
    assert.deepEqual(p0!.spec?.volumes?.find((v) => v.name === 'api-key'), { name: 'api-key', secret: { secretName: 'api', items: [{ key: 'token', path: 'api-key' }], defaultMode: 0o444 } });
    assert.deepEqual(p0!.spec?.containers[0]!.volumeMounts?.find((m) => m.name === 'api-key'), { name: 'api-key', mountPath: '/var/run/secrets/bloom', readOnly: true });
    assert.equal(envOf(p0!).BLOOM_API_KEY_FILE, '/var/run/secrets/bloom/api-key');
    assert.ok(!(p0!.spec?.containers[0]!.env ?? []).some((e) => e.valueFrom?.secretKeyRef));
    assert.ok(!p1!.spec?.volumes?.some((v) => v.name === 'api-key'));
  });
});

describe('groups: the NetworkPolicy of a group', () => {
  const bd = bloomDeployment(16, { placement: { topologyKey: CLIQUE } });
  const policy = desiredGroupNetworkPolicy(bd, 1, 2);
  const [p0, p1] = pods(bd, 2);
  const [rendezvous, http, health] = policy.spec!.ingress!;
  const portsOf = (pod: V1Pod) => Object.fromEntries((pod.spec?.containers[0]!.ports ?? []).map((p) => [p.name, p.containerPort]));

  it('is named like the group, owned by the deployment, and selects every pod of the group (any epoch) and no other', () => {
    assert.equal(policy.metadata?.name, 'bloom-g1');
    assert.equal(policy.metadata?.ownerReferences?.[0]?.uid, '0f3c6a4e-uid');
    assert.deepEqual(policy.spec?.policyTypes, ['Ingress']);
    for (const pod of [p0!, p1!, ...pods(bd, 3)]) assert.ok(matches(policy.spec?.podSelector.matchLabels, pod.metadata?.labels));
    for (const other of [...pods(bloomDeployment(16, { placement: { topologyKey: CLIQUE } }), 2).map((p) => ({ ...p.metadata!.labels!, [LABELS.group]: '0' }))]) {
      assert.ok(!matches(policy.spec?.podSelector.matchLabels, other));
    }
  });

  it('lets the rendezvous port and the ephemeral range in only from the current incarnation', () => {
    assert.deepEqual(rendezvous!.ports, [{ protocol: 'TCP', port: portsOf(p0!).rendezvous }, { protocol: 'TCP', port: 40000, endPort: 44999 }]);
    const [peer] = rendezvous!.from!;
    assert.ok(matches(peer!.podSelector?.matchLabels, p1!.metadata?.labels));
    assert.ok(!matches(peer!.podSelector?.matchLabels, pods(bd, 1)[1]!.metadata?.labels), 'not from the previous epoch');
    assert.equal(peer!.podSelector?.matchLabels?.[LABELS.epoch], '2');
  });

  it('lets the HTTP and health ports in from their peers (default: every pod of the namespace)', () => {
    assert.deepEqual(http, { from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: portsOf(p0!).http }] });
    assert.deepEqual(health, { from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: portsOf(p1!).health }] });
  });

  it('copies configured peers without the empty members the API server would drop', () => {
    const custom = bloomDeployment(8, { network: { httpFrom: [{ namespaceSelector: { matchLabels: { gateway: 'yes' } }, podSelector: { matchLabels: {} } }], healthFrom: [{ ipBlock: { cidr: '10.0.0.0/8', except: [] } }] } });
    const [, h, m] = desiredGroupNetworkPolicy(custom, 0, 1).spec!.ingress!;
    assert.deepEqual(h!.from, [{ podSelector: {}, namespaceSelector: { matchLabels: { gateway: 'yes' } } }]);
    assert.deepEqual(m!.from, [{ ipBlock: { cidr: '10.0.0.0/8' } }]);
  });
});
