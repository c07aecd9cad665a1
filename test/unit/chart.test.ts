// The Helm chart (charts/bloom-operator): lint, rendering with default and
// non-default values, RBAC exactly as files/rbac-rules.yaml, restricted pod
// security, the opt-in managed CRD, and values.schema.json errors.
// Needs the helm binary built by hack/toolchain.sh; skips only without it.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const chart = join(root, 'charts', 'bloom-operator');
const CRD_FILE = 'inference.bloom.dev_bloomdeployments.yaml';
const NS = 'bloom-system';

/** helm from $HELM, .cluster/bin (hack/toolchain.sh links it there) or the toolchain cache. */
function findHelm(): string | undefined {
  const candidates = [process.env.HELM, join(root, '.cluster', 'bin', 'helm')];
  const tools = join(process.env.BLOOM_CACHE ?? join(homedir(), '.cache', 'bloom-operator'), 'tools');
  if (existsSync(tools)) {
    for (const d of readdirSync(tools).filter((n) => n.startsWith('helm-')).sort().reverse()) {
      candidates.push(join(tools, d, 'bin', 'helm'));
    }
  }
  return candidates.find((p): p is string => !!p && existsSync(p));
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
// Rendered objects are loosely typed YAML.
type Any = any;

// The operator's permissions, spelled out: the chart must grant exactly these.
const WATCHED_RULES: PolicyRule[] = [
  { apiGroups: ['inference.bloom.dev'], resources: ['bloomdeployments'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['inference.bloom.dev'], resources: ['bloomdeployments/status'], verbs: ['get', 'update', 'patch'] },
  { apiGroups: ['inference.bloom.dev'], resources: ['bloomdeployments/finalizers'], verbs: ['update'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete', 'patch'] },
  { apiGroups: [''], resources: ['pods/status'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch', 'create', 'delete', 'patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
  { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch', 'create', 'delete', 'patch'] },
  { apiGroups: ['scheduling.k8s.io'], resources: ['podgroups'], verbs: ['create', 'patch', 'delete'] },
];
const CLUSTER_RULES: PolicyRule[] = [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }];
const LEADER_RULES: PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];

describe('helm chart charts/bloom-operator', function () {
  this.timeout(120_000);
  let helm = '';
  let tmp = '';

  before(function () {
    const found = findHelm();
    if (!found) {
      console.log('    (skipped: no helm binary in $HELM, .cluster/bin or ~/.cache/bloom-operator/tools; run "bash hack/setup.sh --tools")');
      this.skip();
    }
    helm = found!;
    tmp = mkdtempSync(join(tmpdir(), 'bloom-chart-'));
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function run(args: string[]): { status: number; stdout: string; stderr: string } {
    const r = spawnSync(helm, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: tmp, HELM_CONFIG_HOME: tmp } });
    if (r.error) throw r.error;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  function valuesFile(name: string, values: unknown): string {
    const p = join(tmp, `${name}.yaml`);
    writeFileSync(p, yaml.dump(values));
    return p;
  }

  function render(extra: string[] = []): K8sObject[] {
    const r = run(['template', 'rel', chart, '--namespace', NS, '--kube-version', 'v1.34.0', ...extra]);
    assert.equal(r.status, 0, `helm template failed: ${r.stderr}`);
    return (yaml.loadAll(r.stdout) as (K8sObject | null)[]).filter((o): o is K8sObject => !!o);
  }

  /** helm template that must fail; returns its error text. */
  function renderError(extra: string[]): string {
    const r = run(['template', 'rel', chart, '--namespace', NS, '--kube-version', 'v1.34.0', ...extra]);
    assert.notEqual(r.status, 0, `helm template should have failed for ${extra.join(' ')}`);
    return r.stderr;
  }

  const one = (objs: K8sObject[], kind: string, name?: string): Any => {
    const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
    assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
    return found[0];
  };
  const kinds = (objs: K8sObject[]) => objs.map((o) => o.kind).sort();

  it('passes helm lint --strict with default and non-default values', () => {
    for (const extra of [
      [],
      ['--set', 'rbac.scope=namespace,watchNamespace=ml,crds.manage=true,serviceMonitor.enabled=true,replicaCount=3'],
    ]) {
      const r = run(['lint', '--strict', chart, '--namespace', NS, ...extra]);
      assert.equal(r.status, 0, `helm lint --strict ${extra.join(' ')}:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/);
    }
  });

  it('keeps the rule list in one file that holds exactly the operator permissions', () => {
    const rules = yaml.load(readFileSync(join(chart, 'files', 'rbac-rules.yaml'), 'utf8')) as Record<string, PolicyRule[]>;
    assert.deepEqual(rules, { watched: WATCHED_RULES, clusterScoped: CLUSTER_RULES, leaderElection: LEADER_RULES });
  });

  describe('default values', () => {
    let objs: K8sObject[] = [];
    before(() => {
      objs = render();
    });

    it('renders the expected kinds (CRD only from crds/, no ServiceMonitor)', () => {
      assert.deepEqual(kinds(objs), [
        'ClusterRole',
        'ClusterRoleBinding',
        'Deployment',
        'Role',
        'RoleBinding',
        'Secret',
        'Service',
        'Service',
        'ServiceAccount',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
        'ValidatingWebhookConfiguration',
      ]);
    });

    it('warns, never refuses, about hostPath model sources, in every namespace', () => {
      const policy = one(objs, 'ValidatingAdmissionPolicy', 'rel-bloom-operator-hostpath-source');
      assert.deepEqual(policy.spec.matchConstraints.resourceRules, [{ apiGroups: ['inference.bloom.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['bloomdeployments'] }]);
      assert.equal(policy.spec.failurePolicy, 'Ignore');
      assert.deepEqual(policy.spec.validations.map((v: Any) => v.expression), ['!has(object.spec.model.source.hostPath)']);
      assert.match(policy.spec.validations[0].messageExpression, /Baseline and Restricted Pod Security Standards forbid hostPath/);
      const binding = one(objs, 'ValidatingAdmissionPolicyBinding', 'rel-bloom-operator-hostpath-source');
      assert.deepEqual([binding.spec.policyName, binding.spec.validationActions, binding.spec.matchResources], [policy.metadata.name, ['Warn'], undefined]);
    });

    it('serves the eviction webhook with a certificate its configuration trusts, for every eviction, never blocking one', () => {
      const hook = one(objs, 'ValidatingWebhookConfiguration', 'rel-bloom-operator-eviction').webhooks[0];
      assert.deepEqual(hook.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods/eviction'], scope: 'Namespaced' }]);
      assert.deepEqual([hook.failurePolicy, hook.sideEffects, hook.namespaceSelector], ['Ignore', 'NoneOnDryRun', undefined]);
      assert.deepEqual(hook.clientConfig.service, { name: 'rel-bloom-operator-webhook', namespace: NS, path: '/validate-eviction', port: 443 });
      const secret = one(objs, 'Secret', 'rel-bloom-operator-webhook-cert');
      const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
      const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, 'base64'));
      assert.ok(cert.verify(ca.publicKey), 'the serving certificate is signed by the CA in caBundle');
      assert.match(cert.subjectAltName ?? '', new RegExp(`DNS:rel-bloom-operator-webhook.${NS}.svc`));
      const service = one(objs, 'Service', 'rel-bloom-operator-webhook');
      assert.deepEqual(service.spec.ports, [{ name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' }]);
      const c = one(objs, 'Deployment').spec.template.spec.containers[0];
      assert.deepEqual(c.args.slice(c.args.indexOf('--webhook-port'), c.args.indexOf('--webhook-port') + 4), ['--webhook-port', '9443', '--webhook-cert-dir', '/etc/bloom-operator/webhook']);
      assert.deepEqual(c.volumeMounts.find((m: Any) => m.name === 'webhook-cert'), { name: 'webhook-cert', mountPath: '/etc/bloom-operator/webhook', readOnly: true });
    });

    it('grants exactly the rule list cluster-wide, and leases only in the release namespace', () => {
      const cr = one(objs, 'ClusterRole');
      assert.deepEqual(cr.rules, [...WATCHED_RULES, ...CLUSTER_RULES]);
      const crb = one(objs, 'ClusterRoleBinding');
      assert.deepEqual(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cr.metadata.name });
      assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'rel-bloom-operator', namespace: NS }]);
      const le = one(objs, 'Role');
      assert.equal(le.metadata.namespace, NS);
      assert.deepEqual(le.rules, LEADER_RULES);
      const leb = one(objs, 'RoleBinding');
      assert.equal(leb.metadata.namespace, NS);
      assert.deepEqual(leb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: le.metadata.name });
      assert.deepEqual(leb.subjects, [{ kind: 'ServiceAccount', name: 'rel-bloom-operator', namespace: NS }]);
      // Nothing broader slipped in.
      const verbs = [...cr.rules, ...le.rules].flatMap((r: PolicyRule) => r.verbs);
      assert.ok(!verbs.includes('*') && !verbs.includes('deletecollection') && !verbs.includes('escalate'));
      assert.ok(!cr.rules.some((r: PolicyRule) => r.resources.includes('bloomdeployments') && r.verbs.includes('update')));
    });

    it('runs 2 replicas with leader election, the expected args and the service account', () => {
      const d = one(objs, 'Deployment');
      assert.equal(d.metadata.namespace, NS);
      assert.equal(d.spec.replicas, 2);
      const pod = d.spec.template.spec;
      assert.equal(pod.serviceAccountName, 'rel-bloom-operator');
      assert.equal(one(objs, 'ServiceAccount').metadata.name, 'rel-bloom-operator');
      const c = pod.containers[0];
      assert.equal(c.image, 'ghcr.io/bloom-operator/bloom-operator:0.1.0');
      assert.deepEqual(c.args, ['run', '--leader-elect', '--leader-election-id', 'rel-bloom-operator', '--metrics-port', '8080', '--health-port', '8081',
        '--webhook-port', '9443', '--webhook-cert-dir', '/etc/bloom-operator/webhook', '--log-level', 'info']);
      assert.deepEqual(
        c.env.map((e: Any) => [e.name, e.valueFrom.fieldRef.fieldPath]),
        [
          ['POD_NAME', 'metadata.name'],
          ['POD_NAMESPACE', 'metadata.namespace'],
        ],
      );
      assert.deepEqual(
        c.ports.map((p: Any) => [p.name, p.containerPort]),
        [
          ['http-metrics', 8080],
          ['http-health', 8081],
          ['webhook', 9443],
        ],
      );
      assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http-health' });
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'http-health' });
      assert.deepEqual(c.resources, { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } });
      assert.deepEqual(d.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'bloom-operator', 'app.kubernetes.io/instance': 'rel' });
    });

    it('meets the restricted Pod Security Standard with a read-only root filesystem', () => {
      const pod = one(objs, 'Deployment').spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(pod.securityContext.runAsUser > 0);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
      assert.deepEqual(pod.containers[0].securityContext, {
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.equal(pod.hostNetwork, undefined);
      assert.ok(pod.volumes.every((v: Any) => v.emptyDir || v.secret), 'only emptyDir and Secret volumes (no hostPath)');
    });

    it('exposes the metrics port through a Service', () => {
      const svc = one(objs, 'Service', 'rel-bloom-operator-metrics');
      assert.equal(svc.metadata.name, 'rel-bloom-operator-metrics');
      assert.deepEqual(svc.spec.ports, [{ name: 'http-metrics', port: 8080, targetPort: 'http-metrics', protocol: 'TCP' }]);
      assert.deepEqual(svc.spec.selector, one(objs, 'Deployment').spec.selector.matchLabels);
    });

    it('ships the generated CRD in crds/ (installed by default, identical to the repository crds/)', () => {
      const generated = join(root, 'crds', CRD_FILE);
      const copy = join(chart, 'crds', CRD_FILE);
      assert.ok(existsSync(copy), `charts/bloom-operator/crds/${CRD_FILE} is missing: run hack/sync-chart-crds.sh`);
      assert.equal(readFileSync(copy, 'utf8'), readFileSync(generated, 'utf8'), 'chart CRD is stale: run hack/sync-chart-crds.sh');
      const withCrds = render(['--include-crds']);
      const crd = one(withCrds, 'CustomResourceDefinition');
      assert.equal(crd.metadata.name, 'bloomdeployments.inference.bloom.dev');
    });
  });

  describe('non-default values (namespaced RBAC, managed CRD, ServiceMonitor, 3 replicas)', () => {
    let objs: K8sObject[] = [];
    before(() => {
      objs = render([
        '-f',
        valuesFile('custom', {
          replicaCount: 3,
          watchNamespace: 'ml',
          rbac: { scope: 'namespace' },
          crds: { manage: true },
          serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } },
          logLevel: 'debug',
          image: { repository: 'registry.example/bloom/operator', tag: 'v9' },
          nodeSelector: { 'node-role.kubernetes.io/control-plane': '' },
          tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' }],
          affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } },
        }),
      ]);
    });

    it('renders Roles instead of ClusterRoles, plus the CRD and the ServiceMonitor', () => {
      assert.deepEqual(kinds(objs), [
        'CustomResourceDefinition',
        'Deployment',
        'Role',
        'Role',
        'RoleBinding',
        'RoleBinding',
        'Secret',
        'Service',
        'Service',
        'ServiceAccount',
        'ServiceMonitor',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
        'ValidatingWebhookConfiguration',
      ]);
    });

    it('binds the hostPath warning to the watched namespace only', () => {
      const binding = one(objs, 'ValidatingAdmissionPolicyBinding');
      assert.deepEqual(binding.spec.matchResources, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ml' } } });
    });

    it('grants the watched rules in the watched namespace only (no nodes), leases in the release namespace', () => {
      const role = one(objs, 'Role', 'rel-bloom-operator');
      assert.equal(role.metadata.namespace, 'ml');
      assert.deepEqual(role.rules, WATCHED_RULES);
      const rb = one(objs, 'RoleBinding', 'rel-bloom-operator');
      assert.equal(rb.metadata.namespace, 'ml');
      assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name: 'rel-bloom-operator', namespace: NS }]);
      const le = one(objs, 'Role', 'rel-bloom-operator-leader-election');
      assert.equal(le.metadata.namespace, NS);
      assert.deepEqual(le.rules, LEADER_RULES);
    });

    it('passes --namespace and the log level, scales to 3, and applies scheduling values', () => {
      const d = one(objs, 'Deployment');
      assert.equal(d.spec.replicas, 3);
      const pod = d.spec.template.spec;
      assert.deepEqual(pod.containers[0].args, [
        'run',
        '--leader-elect',
        '--leader-election-id',
        'rel-bloom-operator',
        '--metrics-port',
        '8080',
        '--health-port',
        '8081',
        '--namespace',
        'ml',
        '--no-watch-nodes',
        '--webhook-port',
        '9443',
        '--webhook-cert-dir',
        '/etc/bloom-operator/webhook',
        '--log-level',
        'debug',
      ]);
      const hook = one(objs, 'ValidatingWebhookConfiguration').webhooks[0];
      assert.deepEqual(hook.namespaceSelector, { matchLabels: { 'kubernetes.io/metadata.name': 'ml' } }, 'only the watched namespace\'s evictions');
      assert.equal(pod.containers[0].image, 'registry.example/bloom/operator:v9');
      assert.deepEqual(pod.nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
      assert.equal(pod.tolerations[0].key, 'dedicated');
      assert.ok(pod.affinity.podAntiAffinity);
    });

    it('creates no PodDisruptionBudgets in a namespace-scoped install without the webhook: nothing would see a drain', () => {
      const without = render(['-f', valuesFile('nowebhook', { rbac: { scope: 'namespace' }, drainWebhook: { enabled: false } })]);
      const args = one(without, 'Deployment').spec.template.spec.containers[0].args;
      assert.ok(args.includes('--no-manage-disruption-budgets') && !args.includes('--webhook-port'));
      assert.equal(without.filter((o) => o.kind === 'ValidatingWebhookConfiguration').length, 0);
    });

    it('renders the CRD from the chart file, kept on uninstall', () => {
      const crd = one(objs, 'CustomResourceDefinition');
      const file = yaml.load(readFileSync(join(chart, 'crds', CRD_FILE), 'utf8')) as Any;
      assert.deepEqual(crd.spec, file.spec);
      assert.equal(crd.metadata.name, file.metadata.name);
      assert.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep');
      assert.equal(crd.metadata.labels['app.kubernetes.io/managed-by'], 'Helm');
    });

    it('renders a ServiceMonitor for the metrics Service', () => {
      const sm = one(objs, 'ServiceMonitor');
      assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
      assert.equal(sm.metadata.labels.release, 'prom');
      assert.deepEqual(sm.spec.selector.matchLabels, one(objs, 'Service', 'rel-bloom-operator-metrics').spec.selector);
      assert.deepEqual(sm.spec.endpoints, [{ port: 'http-metrics', path: '/metrics', interval: '15s', scrapeTimeout: '10s' }]);
      assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
    });

    it('with rbac.scope=namespace and no watchNamespace, watches the release namespace', () => {
      const o = render(['--set', 'rbac.scope=namespace']);
      assert.equal(one(o, 'Role', 'rel-bloom-operator').metadata.namespace, NS);
      const args: string[] = one(o, 'Deployment').spec.template.spec.containers[0].args;
      assert.deepEqual(args.slice(args.indexOf('--namespace'), args.indexOf('--namespace') + 2), ['--namespace', NS]);
    });

    it('renders no RBAC with rbac.create=false and no leader-election Role without leader election', () => {
      assert.deepEqual(kinds(render(['--set', 'rbac.create=false,drainWebhook.enabled=false,admissionPolicies.enabled=false'])), ['Deployment', 'Service', 'ServiceAccount']);
      const o = render(['--set', 'leaderElection.enabled=false,replicaCount=1']);
      assert.equal(o.filter((x) => x.kind === 'Role').length, 0);
      const args: string[] = one(o, 'Deployment').spec.template.spec.containers[0].args;
      assert.ok(!args.includes('--leader-elect') && !args.includes('--leader-election-id'));
    });

    it('names the Lease after the release, so two releases never share one', () => {
      const leaseOf = (release: string, extra: string[] = []) => {
        const r = run(['template', release, chart, '--namespace', NS, '--kube-version', 'v1.34.0', '--show-only', 'templates/deployment.yaml', ...extra]);
        assert.equal(r.status, 0, r.stderr);
        const args: string[] = (yaml.load(r.stdout) as Any).spec.template.spec.containers[0].args;
        return args[args.indexOf('--leader-election-id') + 1];
      };
      assert.equal(leaseOf('a'), 'a-bloom-operator');
      assert.equal(leaseOf('b'), 'b-bloom-operator');
      assert.equal(leaseOf('bloom-operator-prod'), 'bloom-operator-prod', 'the full name, as the other objects use it');
      assert.equal(leaseOf('a', ['--set', 'fullnameOverride=ops']), 'ops');
    });
  });

  describe('values.schema.json', () => {
    const cases: [string, string[], RegExp][] = [
      ['replicaCount 0', ['--set', 'replicaCount=0'], /at '\/replicaCount': minimum: got 0, want 1/],
      ['replicaCount not an integer', ['--set-string', 'replicaCount=two'], /at '\/replicaCount': got string, want integer/],
      ['empty image.repository', ['--set', 'image.repository='], /at '\/image\/repository': minLength: got 0, want 1/],
      ['rbac.scope not in the enum', ['--set', 'rbac.scope=global'], /at '\/rbac\/scope': value must be one of 'cluster', 'namespace'/],
      ['logLevel not in the enum', ['--set', 'logLevel=trace'], /at '\/logLevel': value must be one of 'error', 'warn', 'info', 'debug'/],
      ['metrics.port above 65535', ['--set', 'metrics.port=70000'], /at '\/metrics\/port': maximum: got 70,?000, want 65,?535/],
      ['health.port 0', ['--set', 'health.port=0'], /at '\/health\/port': minimum: got 0, want 1/],
      ['unknown top-level key', ['--set', 'replicas=3'], /additional properties 'replicas' not allowed/],
      ['unknown nested key', ['--set', 'rbac.scopes=cluster'], /at '\/rbac': additional properties 'scopes' not allowed/],
      ['bad watchNamespace', ['--set', 'watchNamespace=Not_A_Namespace'], /at '\/watchNamespace'/],
    ];
    for (const [what, args, message] of cases) {
      it(`rejects ${what}`, () => {
        const err = renderError(args);
        assert.match(err, /values don't meet the specifications of the schema/);
        assert.match(err, message);
      });
    }

    it('requires Kubernetes 1.29 or later (pre-release builds included)', () => {
      const old = run(['template', 'rel', chart, '--kube-version', 'v1.28.9']);
      assert.notEqual(old.status, 0);
      assert.match(old.stderr, /chart requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v1.28.9/);
      assert.equal(run(['template', 'rel', chart, '--kube-version', 'v1.29.0-gke.1']).status, 0);
    });

    it('renders the hostPath warning policy only where admissionregistration.k8s.io/v1 has it (1.30+)', () => {
      const on = (version: string) => run(['template', 'rel', chart, '--kube-version', version]).stdout.includes('kind: ValidatingAdmissionPolicy\n');
      assert.deepEqual([on('v1.29.4'), on('v1.30.0-eks.1'), on('v1.34.0')], [false, true, true]);
    });

    it('refuses several replicas without leader election', () => {
      assert.match(
        renderError(['--set', 'leaderElection.enabled=false']),
        /replicaCount > 1 needs leaderElection.enabled=true/,
      );
    });
  });
});
