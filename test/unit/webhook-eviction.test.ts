import assert from 'node:assert/strict';
import { reviewEviction } from '../../operator/src/webhook/eviction.js';

const eviction = (over: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: { uid: 'u-1', resource: { group: '', version: 'v1', resource: 'pods' }, subResource: 'eviction', operation: 'CREATE', name: 'bloom-g0-p1-e3', namespace: 'ml', ...over },
});

describe('the eviction webhook (review, pure)', () => {
  it('always allows (the PodDisruptionBudget decides) and names the pod whose eviction was asked for', () => {
    const d = reviewEviction(eviction());
    assert.deepEqual(d.review, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true } });
    assert.deepEqual(d.pod, { namespace: 'ml', name: 'bloom-g0-p1-e3' });
  });

  it('marks nothing for a dry run or for anything that is not a pod eviction', () => {
    assert.equal(reviewEviction(eviction({ dryRun: true })).pod, undefined);
    assert.equal(reviewEviction(eviction({ subResource: 'status' })).pod, undefined);
    assert.equal(reviewEviction(eviction({ resource: { resource: 'services' } })).pod, undefined);
    const other = reviewEviction(eviction({ operation: 'DELETE' }));
    assert.deepEqual([other.pod, other.review.response.allowed], [undefined, true]);
  });

  it('refuses a body that is not an AdmissionReview request', () => {
    assert.throws(() => reviewEviction({}), /request.uid is missing/);
  });
});
