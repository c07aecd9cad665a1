// The Pulumi component (operator/src/pulumi) under pulumi.runtime.setMocks:
// no CLI, no engine. Checks the resources it registers, that its RBAC is the
// chart's rule list, the typed BloomDeployment custom resource, and that the
// operator itself never imports Pulumi.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import yaml from 'js-yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
type Any = any;

interface Registered {
  type: string;
  name: string;
  inputs: Any;
}
const registered: Registered[] = [];

/** Resolves with an Output's value (mocks are not a preview, so every value is known). */
function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((done) => o.apply((v) => done(v)));
}

async function settled(resources: (pulumi.Resource | undefined)[]): Promise<void> {
  await Promise.all(resources.filter((r): r is pulumi.Resource => !!r).map((r) => value(r.urn)));
}

const byName = (name: string): Registered => {
  const r = registered.find((x) => x.name === name);
  assert.ok(r, `resource ${name} was not registered (have: ${registered.map((x) => x.name).join(', ')})`);
  return r;
};

const sharedRules = () =>
  yaml.load(readFileSync(join(root, 'charts', 'bloom-operator', 'files', 'rbac-rules.yaml'), 'utf8')) as Record<string, Any[]>;

describe('Pulumi component (runtime mocks)', function () {
  this.timeout(60_000);
  let mod: typeof import('../../operator/src/pulumi/index.js');

  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (args: pulumi.runtime.MockResourceArgs) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          return { id: `${args.name}-id`, state: args.inputs };
        },
        call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
      },
      'bloom-operator',
      'unit',
      false,
    );
    // Only after setMocks: the component module must see the mocked runtime.
    mod = await import('../../operator/src/pulumi/index.js');
  });

  describe('BloomOperator with defaults', () => {
    let op: InstanceType<typeof mod.BloomOperator>;
    before(async () => {
      op = new mod.BloomOperator('bloom');
      await settled([
        op,
        op.namespaceResource,
        op.crd,
        op.serviceAccount,
        op.role,
        op.roleBinding,
        op.leaderElectionRole,
        op.leaderElectionRoleBinding,
        op.deployment,
        op.metricsService,
      ]);
    });

    it('registers the component and every child with the expected types and names', () => {
      const mine = registered.filter((r) => r.name === 'bloom' || r.name.startsWith('bloom-'));
      assert.deepEqual(
        mine.map((r) => [r.type, r.name]).sort(),
        [
          ['bloom:index:BloomOperator', 'bloom'],
          ['kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition', 'bloom-crd'],
          ['kubernetes:apps/v1:Deployment', 'bloom-deployment'],
          ['kubernetes:core/v1:Namespace', 'bloom-namespace'],
          ['kubernetes:core/v1:Service', 'bloom-metrics'],
          ['kubernetes:core/v1:ServiceAccount', 'bloom-sa'],
          ['kubernetes:rbac.authorization.k8s.io/v1:ClusterRole', 'bloom-role'],
          ['kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding', 'bloom-rolebinding'],
          ['kubernetes:rbac.authorization.k8s.io/v1:Role', 'bloom-leader-election-role'],
          ['kubernetes:rbac.authorization.k8s.io/v1:RoleBinding', 'bloom-leader-election-rolebinding'],
        ].sort(),
      );
      assert.equal(byName('bloom-namespace').inputs.metadata.name, 'bloom-system');
      assert.equal(byName('bloom-sa').inputs.metadata.namespace, 'bloom-system');
      assert.equal(byName('bloom-deployment').inputs.metadata.name, 'bloom');
    });

    it('grants exactly the chart rule list (files/rbac-rules.yaml)', () => {
      const rules = sharedRules();
      assert.deepEqual(byName('bloom-role').inputs.rules, [...rules.watched!, ...rules.clusterScoped!]);
      const binding = byName('bloom-rolebinding').inputs;
      assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bloom' });
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'bloom', namespace: 'bloom-system' }]);
      const le = byName('bloom-leader-election-role').inputs;
      assert.equal(le.metadata.namespace, 'bloom-system');
      assert.deepEqual(le.rules, rules.leaderElection);
    });

    it('installs the generated CRD unchanged', () => {
      const file = yaml.load(readFileSync(join(root, 'crds', 'inference.bloom.dev_bloomdeployments.yaml'), 'utf8')) as Any;
      const crd = byName('bloom-crd').inputs;
      assert.equal(crd.metadata.name, 'bloomdeployments.inference.bloom.dev');
      assert.deepEqual(crd.spec, file.spec);
    });

    it('runs the operator like the chart does: 2 replicas, leader election, restricted security context', () => {
      const d = byName('bloom-deployment').inputs;
      assert.equal(d.spec.replicas, 2);
      const pod = d.spec.template.spec;
      assert.equal(pod.serviceAccountName, 'bloom');
      const c = pod.containers[0];
      assert.equal(c.image, mod.DEFAULT_IMAGE);
      assert.deepEqual(c.args, ['run', '--leader-elect', '--leader-election-id', 'bloom', '--metrics-port', '8080', '--health-port', '8081', '--log-level', 'info']);
      assert.deepEqual(c.securityContext, {
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
      assert.deepEqual(d.spec.selector.matchLabels, byName('bloom-metrics').inputs.spec.selector);
    });

    it('matches the chart Deployment container (when helm is available)', function () {
      const helm = [process.env.HELM, join(root, '.cluster', 'bin', 'helm')].find((p) => p && existsSync(p));
      if (!helm) {
        console.log('    (skipped: no helm binary to render the chart with)');
        return this.skip();
      }
      // The component names its objects (and its Lease) after itself, the chart after the release's full name.
      // The Pulumi component does not serve the eviction webhook (see its README): compare with the chart without it.
      const sameName = ['--set', 'fullnameOverride=bloom,drainWebhook.enabled=false'];
      const r = spawnSync(helm, ['template', 'bloom', join(root, 'charts', 'bloom-operator'), '-n', 'bloom-system', ...sameName, '--show-only', 'templates/deployment.yaml'], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const chartPod = (yaml.load(r.stdout) as Any).spec.template.spec;
      const pod = byName('bloom-deployment').inputs.spec.template.spec;
      for (const key of ['args', 'env', 'ports', 'livenessProbe', 'readinessProbe', 'securityContext', 'resources', 'volumeMounts']) {
        assert.deepEqual(pod.containers[0][key], chartPod.containers[0][key], `container ${key}`);
      }
      assert.deepEqual(pod.securityContext, chartPod.securityContext);
      assert.deepEqual(pod.volumes, chartPod.volumes);

      const ns = spawnSync(
        helm,
        ['template', 'bloom', join(root, 'charts', 'bloom-operator'), '-n', 'ops', ...sameName, '--set', 'rbac.scope=namespace,watchNamespace=ml,logLevel=debug', '--show-only', 'templates/deployment.yaml'],
        { encoding: 'utf8' },
      );
      assert.equal(ns.status, 0, ns.stderr);
      assert.deepEqual(
        mod.operatorArgs({ leaderElection: true, leaderElectionId: 'bloom', metricsPort: 8080, healthPort: 8081, watchNamespace: 'ml', watchNodes: false, logLevel: 'debug' }),
        (yaml.load(ns.stdout) as Any).spec.template.spec.containers[0].args,
        'namespace-scoped args',
      );
    });
  });

  describe('BloomOperator in namespace scope', () => {
    it('grants the watched rules through a Role in the watched namespace, with no node access', async () => {
      const op = new mod.BloomOperator('nsop', { namespace: 'ops', createNamespace: false, rbacScope: 'namespace', watchNamespace: 'ml', installCrd: false, replicas: 3 });
      await settled([op, op.serviceAccount, op.role, op.roleBinding, op.leaderElectionRole, op.deployment, op.metricsService]);
      assert.ok(!registered.some((r) => r.name === 'nsop-namespace' || r.name === 'nsop-crd'));
      const role = byName('nsop-role');
      assert.equal(role.type, 'kubernetes:rbac.authorization.k8s.io/v1:Role');
      assert.equal(role.inputs.metadata.namespace, 'ml');
      assert.deepEqual(role.inputs.rules, sharedRules().watched);
      assert.ok(!JSON.stringify(role.inputs.rules).includes('nodes'));
      const binding = byName('nsop-rolebinding').inputs;
      assert.equal(binding.metadata.namespace, 'ml');
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'nsop', namespace: 'ops' }]);
      const d = byName('nsop-deployment').inputs;
      assert.equal(d.spec.replicas, 3);
      const args: string[] = d.spec.template.spec.containers[0].args;
      assert.deepEqual(args.slice(1, 4), ['--leader-elect', '--leader-election-id', 'nsop'], 'a Lease of its own, named after the component');
      assert.deepEqual(args.slice(8), ['--namespace', 'ml', '--no-watch-nodes', '--no-manage-disruption-budgets', '--log-level', 'info']);
    });

    it('rejects invalid settings', () => {
      assert.throws(() => new mod.BloomOperator('bad1', { leaderElection: false }), /replicas > 1 needs leaderElection/);
      assert.throws(() => new mod.BloomOperator('bad2', { rbacScope: 'global' as Any }), /rbacScope must be/);
      assert.throws(() => new mod.BloomOperator('bad3', { replicas: 0 }), /replicas must be an integer >= 1/);
      assert.throws(() => new mod.BloomOperator('bad4', { metricsPort: 70000 }), /metricsPort must be an integer in 1..65535/);
      assert.ok(!registered.some((r) => r.name.startsWith('bad')), 'nothing registered for rejected args');
    });
  });

  describe('BloomDeployment custom resource', () => {
    it('registers an inference.bloom.dev/v1alpha1 BloomDeployment with the given spec (Outputs allowed inside)', async () => {
      const image = pulumi.output('registry.example/bloom-worker:1.0');
      const bd = new mod.BloomDeployment('bloom-176b', {
        metadata: { name: 'bloom-176b', namespace: 'ml' },
        spec: {
          replicas: 2,
          tensorParallelSize: 8,
          model: { format: 'bloom-int8', source: { persistentVolumeClaim: { claimName: 'bloom-int8' } }, path: 'bloom-176b' },
          worker: { image, resources: { limits: { 'nvidia.com/gpu': 1 } } },
          placement: { topologyKey: 'nvidia.com/nvlink-domain', exclusive: true },
          rollout: { maxSurge: 1, maxUnavailable: 0 },
        },
      });
      assert.equal(await value(bd.apiVersion), 'inference.bloom.dev/v1alpha1');
      assert.equal(await value(bd.kind), 'BloomDeployment');
      const spec = await value(bd.spec);
      assert.equal(spec.worker.image, 'registry.example/bloom-worker:1.0');
      assert.equal(spec.tensorParallelSize, 8);
      const r = byName('bloom-176b');
      assert.equal(r.type, 'kubernetes:inference.bloom.dev/v1alpha1:BloomDeployment');
      assert.deepEqual(r.inputs.metadata, { name: 'bloom-176b', namespace: 'ml' });
      assert.deepEqual(r.inputs.spec.model, {
        format: 'bloom-int8',
        source: { persistentVolumeClaim: { claimName: 'bloom-int8' } },
        path: 'bloom-176b',
      });
      assert.deepEqual(r.inputs.spec.placement, { topologyKey: 'nvidia.com/nvlink-domain', exclusive: true });
    });

    it('types the spec from the API (compile-time checks)', () => {
      const ok: import('../../operator/src/pulumi/index.js').BloomDeploymentArgs = {
        spec: { model: { source: { hostPath: { path: '/models' } } }, worker: { image: 'w:1' } },
      };
      // @ts-expect-error worker.image is required
      const noImage: import('../../operator/src/pulumi/index.js').BloomDeploymentArgs = { spec: { model: { source: {} }, worker: {} } };
      const badField: import('../../operator/src/pulumi/index.js').BloomDeploymentArgs = {
        // @ts-expect-error replicas is a number
        spec: { replicas: 'two', model: { source: {} }, worker: { image: 'w' } },
      };
      assert.ok(ok && noImage && badField);
    });
  });
});

describe('operator import graph', () => {
  it('never imports Pulumi outside operator/src/pulumi', () => {
    const src = join(root, 'operator', 'src');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir)) {
        const p = join(dir, entry);
        if (statSync(p).isDirectory()) {
          if (p !== join(src, 'pulumi')) walk(p);
        } else if (p.endsWith('.ts')) {
          const text = readFileSync(p, 'utf8');
          if (/from\s+['"]@pulumi\/|import\(\s*['"]@pulumi\/|from\s+['"][./]*\/?pulumi\//.test(text)) offenders.push(relative(root, p));
        }
      }
    };
    walk(src);
    assert.deepEqual(offenders, []);
  });
});
