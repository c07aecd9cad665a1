import assert from 'node:assert/strict';
import { ANNOTATIONS, desiredClientService, desiredGroupService, desiredGroupPod, LABELS, podRevision } from '../../operator/src/groups/index.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const owner = [{ apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment', name: 'bloom', uid: '0f3c6a4e-uid', controller: true, blockOwnerDeletion: true }];
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('groups: services', () => {
  const bd = bloomDeployment(4, { gpusPerPod: 1, placement: { topologyKey: 'nvidia.com/gpu.clique' }, rendezvous: { port: 29555 } });
  const revision = podRevision(bd.spec);
  const pod = (group: number, index: number, epoch: number) => desiredGroupPod({ bd, group, pod: index, epoch, revision, clusterDomain: CLUSTER_DOMAIN });

  it('group Service: headless, publishes not-ready addresses, epoch annotation, rendezvous port, owned', () => {
    const svc = desiredGroupService(bd, 1, 5);
    assert.equal(svc.metadata?.name, 'bloom-g1');
    assert.equal(svc.metadata?.namespace, 'serving');
    assert.equal(svc.metadata?.annotations?.[ANNOTATIONS.epoch], '5');
    assert.deepEqual(svc.metadata?.ownerReferences, owner);
    assert.equal(svc.spec?.clusterIP, 'None');
    assert.equal(svc.spec?.publishNotReadyAddresses, true);
    assert.deepEqual(svc.spec?.ports, [{ name: 'rendezvous', port: 29555, targetPort: 29555, protocol: 'TCP' }]);
  });

  it('group Service selects every pod of the current epoch and nothing else', () => {
    const selector = desiredGroupService(bd, 1, 5).spec?.selector ?? {};
    assert.deepEqual(selector, { [LABELS.deployment]: 'bloom', [LABELS.group]: '1', [LABELS.epoch]: '5' });
    for (let index = 0; index < 4; index++) assert.ok(matches(selector, pod(1, index, 5).metadata?.labels ?? {}));
    assert.ok(!matches(selector, pod(1, 0, 4).metadata?.labels ?? {}), 'an older incarnation');
    assert.ok(!matches(selector, pod(0, 0, 5).metadata?.labels ?? {}), 'another group');
  });

  it('the pod subdomain is the group Service name (DNS for MASTER_ADDR)', () => {
    assert.equal(pod(1, 2, 5).spec?.subdomain, desiredGroupService(bd, 1, 5).metadata?.name);
  });

  it('client Service: ClusterIP on the http port of pod 0 (global rank 0) of every group', () => {
    const svc = desiredClientService(bd);
    assert.equal(svc.metadata?.name, 'bloom');
    assert.deepEqual(svc.metadata?.ownerReferences, owner);
    assert.equal(svc.spec?.type, 'ClusterIP');
    assert.deepEqual(svc.spec?.selector, { [LABELS.deployment]: 'bloom', [LABELS.pod]: '0' });
    assert.deepEqual(svc.spec?.ports, [{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP' }]);
    const selector = svc.spec?.selector ?? {};
    assert.ok(matches(selector, pod(0, 0, 1).metadata?.labels ?? {}));
    assert.ok(matches(selector, pod(3, 0, 9).metadata?.labels ?? {}));
    assert.ok(!matches(selector, pod(0, 1, 1).metadata?.labels ?? {}));
  });
});
