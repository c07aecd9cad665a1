import assert from 'node:assert/strict';
import { podRevision } from '../../operator/src/groups/index.js';
import { bloomDeployment } from '../fixtures/bloom-deployments.js';

describe('groups: pod revision', () => {
  const base = bloomDeployment(8).spec;

  it('is 10 lowercase hex characters and stable', () => {
    assert.match(podRevision(base), /^[0-9a-f]{10}$/);
    assert.equal(podRevision(base), podRevision(structuredClone(base)));
  });

  it('does not depend on key order or on defaults being written out', () => {
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as typeof base;
    assert.equal(podRevision(reordered), podRevision(base));
    const { placement: _p, gang: _g, ...undefaulted } = base;
    assert.equal(podRevision(undefaulted), podRevision(base));
  });

  it('ignores replicas, rollout and failurePolicy', () => {
    const revision = podRevision(base);
    assert.equal(podRevision({ ...base, replicas: 7 }), revision);
    assert.equal(podRevision({ ...base, rollout: { maxSurge: 3, maxUnavailable: 2 } }), revision);
    assert.equal(podRevision({ ...base, failurePolicy: { ...base.failurePolicy, maxGroupRestarts: 9 } }), revision);
  });

  it('changes with the image, the tensor-parallel size, the model, placement, rendezvous', () => {
    const revision = podRevision(base);
    const changed = [
      { ...base, worker: { ...base.worker, image: 'bloom-worker:v2' } },
      { ...base, tensorParallelSize: 4 },
      { ...base, model: { ...base.model, path: 'other' } },
      { ...base, placement: { ...base.placement, exclusive: true } },
      { ...base, rendezvous: { ...base.rendezvous, nccl: { NCCL_DEBUG: 'INFO' } } },
    ].map(podRevision);
    for (const r of changed) assert.notEqual(r, revision);
    assert.equal(new Set(changed).size, changed.length);
  });
});
