import assert from 'node:assert/strict';
import {
  clientServiceName,
  deploymentSelector,
  groupSelector,
  groupServiceName,
  LABELS,
  leaderSelectorString,
  masterAddress,
  podHostname,
  groupPodName,
} from '../../operator/src/groups/index.js';
import { DNS_LABEL_MAX, MAX_NAME_LENGTH, MAX_REPLICAS, MAX_TENSOR_PARALLEL_SIZE } from '../../operator/src/api/constants.js';

describe('groups: names and labels', () => {
  it('derives deterministic names', () => {
    assert.equal(groupServiceName('bloom', 3), 'bloom-g3');
    assert.equal(podHostname('bloom', 3, 7), 'bloom-g3-p7');
    assert.equal(groupPodName('bloom', 3, 7, 12), 'bloom-g3-p7-e12');
    assert.equal(clientServiceName('bloom'), 'bloom');
    assert.equal(masterAddress('bloom', 3, 'serving', 'cluster.local', 2), 'bloom-g3-p0.bloom-g3.serving.svc.cluster.local');
    assert.equal(masterAddress('bloom', 3, 'serving', 'cluster.local', 1), '127.0.0.1', 'a single-pod group rendezvouses on its loopback');
  });

  it('keeps the longest hostname and Service name of the longest allowed name within a DNS label', () => {
    const name = 'b'.repeat(MAX_NAME_LENGTH);
    const hostname = podHostname(name, MAX_REPLICAS - 1, MAX_TENSOR_PARALLEL_SIZE - 1);
    assert.equal(hostname.length, DNS_LABEL_MAX);
    assert.ok(groupServiceName(name, MAX_REPLICAS - 1).length <= DNS_LABEL_MAX);
  });

  it('uses the inference.bloom.dev label keys', () => {
    assert.deepEqual(
      { ...LABELS },
      {
        deployment: 'inference.bloom.dev/deployment',
        group: 'inference.bloom.dev/group',
        pod: 'inference.bloom.dev/pod',
        epoch: 'inference.bloom.dev/epoch',
        revision: 'inference.bloom.dev/revision',
        groupKey: 'inference.bloom.dev/group-key',
      },
    );
  });

  it('builds selectors', () => {
    assert.deepEqual(deploymentSelector('bloom'), { 'inference.bloom.dev/deployment': 'bloom' });
    assert.deepEqual(groupSelector('bloom', 2), { 'inference.bloom.dev/deployment': 'bloom', 'inference.bloom.dev/group': '2' });
    assert.equal(leaderSelectorString('bloom'), 'inference.bloom.dev/deployment=bloom,inference.bloom.dev/pod=0');
  });
});
