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
      const docs = (yaml.loadAll(readFileSync(new URL(file, examplesDir), 'utf8')) as Array<{ kind?: string }>).filter((d) => d.kind === 'BloomDeployment');
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

  describe('group shape (tensorParallelSize, gpusPerPod)', () => {
    const shaped = (tensorParallelSize: number, gpusPerPod: number | undefined, extra: Record<string, unknown> = {}) => {
      const manifest = validManifest();
      const spec = manifest.spec as Record<string, unknown>;
      Object.assign(spec, { tensorParallelSize, ...(gpusPerPod === undefined ? {} : { gpusPerPod }), placement: { topologyKey: 'nvidia.com/gpu.clique' }, ...extra });
      return manifest;
    };
    for (const [tp, gpus] of [[8, 8], [8, 4], [8, 2], [4, 4], [1, 1], [16, undefined], [8, undefined], [2, undefined]] as const) {
      it(`accepts TP=${tp} with gpusPerPod ${gpus ?? '(default)'}`, () => {
        const errors = validateBloomDeployment(shaped(tp, gpus));
        assert.deepEqual(errors, [], describeErrors(errors));
      });
    }
    for (const [tp, gpus] of [[8, 3], [8, 16], [4, 8], [2, 4]] as const) {
      it(`refuses TP=${tp} with gpusPerPod ${gpus}, naming spec.gpusPerPod`, () => {
        assert.ok(validateBloomDeployment(shaped(tp, gpus)).some((e) => e.field === 'spec.gpusPerPod' && /must divide spec.tensorParallelSize/.test(e.message)));
      });
    }
    it('refuses a GPU limit that disagrees with gpusPerPod, also with the default gpusPerPod', () => {
      const worker = (resources: unknown) => ({ worker: { image: 'w', resources } });
      assert.ok(validateBloomDeployment(shaped(8, 4, worker({ limits: { 'nvidia.com/gpu': 8 } }))).some((e) => e.field === 'spec.worker.resources.limits'));
      assert.ok(validateBloomDeployment(shaped(8, undefined, worker({ limits: { 'nvidia.com/gpu': '1' } }))).some((e) => e.field === 'spec.worker.resources.limits'));
      assert.deepEqual(validateBloomDeployment(shaped(8, undefined, worker({ limits: { 'nvidia.com/gpu': '8', memory: '1Ti' }, requests: { 'nvidia.com/gpu': 8 } }))), []);
      assert.deepEqual(validateBloomDeployment(shaped(8, 4, worker({ limits: { 'amd.com/gpu': 1 } }))), [], 'another resource is not the GPU');
    });
    it('refuses a multi-pod group whose domain is a single node (kubernetes.io/hostname)', () => {
      const onHost = shaped(16, undefined, { placement: { topologyKey: 'kubernetes.io/hostname' } });
      assert.ok(validateBloomDeployment(onHost).some((e) => e.field === 'spec.placement.topologyKey'));
      assert.deepEqual(validateBloomDeployment(shaped(8, undefined, { placement: { topologyKey: 'kubernetes.io/hostname' } })), []);
    });
  });

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
