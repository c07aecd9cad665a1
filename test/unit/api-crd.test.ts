import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import {
  API_GROUP,
  API_VERSION,
  CRD_FILE,
  KIND,
  PLURAL,
  bloomDeploymentCrd,
  bloomDeploymentCrdYaml,
  type Schema,
} from '../../operator/src/api/index.js';

const repoRoot = new URL('../../../', import.meta.url);

type Visit = (node: Schema, path: string) => void;
function walk(node: Schema, path: string, visit: Visit): void {
  visit(node, path);
  for (const [key, child] of Object.entries(node.properties ?? {})) walk(child, path ? `${path}.${key}` : key, visit);
  if (node.items) walk(node.items, `${path}[]`, visit);
  if (node.additionalProperties) walk(node.additionalProperties, `${path}.*`, visit);
}

function openAPISchema(): Schema {
  const crd = yaml.load(bloomDeploymentCrdYaml()) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions[0].schema.openAPIV3Schema;
}

describe('api: CRD generation', () => {
  it('is deterministic', () => {
    assert.equal(bloomDeploymentCrdYaml(), bloomDeploymentCrdYaml());
  });

  it(`matches the committed ${CRD_FILE} (run npm run crds when this fails)`, () => {
    const committed = readFileSync(new URL(CRD_FILE, repoRoot), 'utf8');
    assert.equal(committed, bloomDeploymentCrdYaml());
  });

  it('crd-cli --check exits 0 on the committed file', () => {
    const cli = fileURLToPath(new URL('dist/operator/src/api/crd-cli.js', repoRoot));
    const result = spawnSync(process.execPath, [cli, '--check'], { cwd: fileURLToPath(repoRoot), encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  });

  it('names the API: group, version, kind, plural, short name, namespaced', () => {
    const crd = bloomDeploymentCrd() as {
      metadata: { name: string };
      spec: { group: string; scope: string; names: { kind: string; plural: string; shortNames: string[] }; versions: { name: string }[] };
    };
    assert.equal(crd.metadata.name, `${PLURAL}.${API_GROUP}`);
    assert.equal(crd.spec.group, 'inference.bloom.dev');
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.equal(crd.spec.names.kind, KIND);
    assert.equal(crd.spec.names.plural, 'bloomdeployments');
    assert.deepEqual(crd.spec.names.shortNames, ['bd']);
    assert.equal(crd.spec.versions[0].name, API_VERSION);
  });

  it('has status and scale subresources and the printer columns', () => {
    const version = (yaml.load(bloomDeploymentCrdYaml()) as { spec: { versions: Record<string, unknown>[] } }).spec.versions[0];
    assert.deepEqual(version.subresources, {
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    const columns = (version.additionalPrinterColumns as { name: string }[]).map((c) => c.name);
    assert.deepEqual(columns, ['Replicas', 'Ready', 'TP', 'Pods', 'GPUs/Pod', 'Phase', 'Age']);
  });

  it('is structural: every node has a type (or is int-or-string), no preserve-unknown-fields', () => {
    walk(openAPISchema(), '', (node, path) => {
      assert.ok(node.type !== undefined || node['x-kubernetes-int-or-string'], `${path || '<root>'} has no type`);
      assert.equal(node['x-kubernetes-preserve-unknown-fields'], undefined, `${path} preserves unknown fields`);
    });
  });

  it('describes every spec and status field (kubectl explain)', () => {
    const root = openAPISchema();
    for (const top of ['spec', 'status'] as const) {
      walk(root.properties![top], top, (node, path) => {
        if (path.endsWith('.*') || path.endsWith('[]') && node.type !== 'object') return;
        assert.ok(node.description && node.description.length > 5, `${path} has no description`);
      });
    }
  });

  it('writes CEL rules without their TypeScript twins, each with a message naming a field', () => {
    let rules = 0;
    walk(openAPISchema(), '', (node, path) => {
      for (const rule of node['x-kubernetes-validations'] ?? []) {
        rules++;
        const keys = Object.keys(rule).filter((k) => k !== 'fieldPath').sort();
        assert.deepEqual(keys, ['message', 'rule'], `${path}: ${JSON.stringify(rule)}`);
        if ('fieldPath' in rule) assert.match(String(rule.fieldPath), /^(\.[a-zA-Z]+)+$/, `${path}: fieldPath ${String(rule.fieldPath)}`);
        assert.match(rule.message, /\b(spec|metadata)\.[a-zA-Z]+/, `${path}: message does not name a field: ${rule.message}`);
      }
    });
    assert.ok(rules >= 12, `only ${rules} CEL rules`);
  });

  it('bounds lists and maps that CEL rules iterate (cost budget)', () => {
    walk(openAPISchema(), '', (node, path) => {
      const iterates = (node['x-kubernetes-validations'] ?? []).some((r) => /\bself\.all\(/.test(r.rule));
      if (!iterates) return;
      if (node.type === 'array') assert.ok(node.maxItems !== undefined, `${path} needs maxItems`);
      else assert.ok(node.maxProperties !== undefined, `${path} needs maxProperties`);
    });
  });

  it('enforces the metadata.name length and form at the root', () => {
    const rules = (openAPISchema()['x-kubernetes-validations'] ?? []).map((r) => r.rule);
    assert.ok(rules.some((r) => /self\.metadata\.name\.size\(\) <= \d+/.test(r)));
    assert.ok(rules.some((r) => r.includes('self.metadata.name.matches(')));
  });
});
