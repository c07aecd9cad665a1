import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import yaml from 'js-yaml';
import { validateBloomDeployment } from '../../operator/src/api/index.js';
import { INVALID_MANIFESTS } from '../fixtures/invalid-manifests.js';
import { validManifest } from '../fixtures/manifests.js';

const examplesDir = new URL('../../../examples/', import.meta.url);

const describeErrors = (errors: { message: string }[]): string => errors.map((e) => e.message).join('\n  ');

describe('api: validation', () => {
  it('accepts the minimal valid manifest', () => {
    assert.deepEqual(validateBloomDeployment(validManifest()), []);
  });

  for (const file of readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'))) {
    it(`accepts examples/${file}`, () => {
      const docs = yaml.loadAll(readFileSync(new URL(file, examplesDir), 'utf8'));
      assert.ok(docs.length > 0);
      for (const doc of docs) {
        const errors = validateBloomDeployment(doc);
        assert.deepEqual(errors, [], describeErrors(errors));
      }
    });
  }

  it('has at least 20 invalid manifests with unique names', () => {
    assert.ok(INVALID_MANIFESTS.length >= 20);
    assert.equal(new Set(INVALID_MANIFESTS.map((c) => c.name)).size, INVALID_MANIFESTS.length);
    assert.equal(new Set(INVALID_MANIFESTS.map((c) => (c.manifest.metadata as { name: string }).name)).size, INVALID_MANIFESTS.length);
  });

  for (const { name, manifest, expectField } of INVALID_MANIFESTS) {
    it(`rejects ${name}, naming ${expectField}`, () => {
      const errors = validateBloomDeployment(manifest);
      assert.ok(errors.length > 0, 'accepted');
      assert.ok(
        errors.some((e) => e.message.includes(expectField)),
        `no error names ${expectField}:\n  ${describeErrors(errors)}`,
      );
    });
  }

  it('rejects unknown fields (strict field validation)', () => {
    const manifest = validManifest();
    (manifest.spec as Record<string, unknown>).replica = 2;
    assert.ok(validateBloomDeployment(manifest).some((e) => e.field === 'spec.replica'));
  });

  it('allows the optional BLOOM_BIND_ADDRESS and ordinary env', () => {
    const manifest = validManifest();
    (manifest.spec as { worker: Record<string, unknown> }).worker.env = [
      { name: 'BLOOM_BIND_ADDRESS', value: '::' },
      { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf', key: 'token' } } },
    ];
    assert.deepEqual(validateBloomDeployment(manifest), []);
  });
});
