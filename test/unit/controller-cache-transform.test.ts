/** The informers' cache transforms keep what the controller reads and drop what it never does. */
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { forCache, nodeForCache, podForCache, podUsageForCache } from '../../operator/src/controller/cache-transform.js';
import { podRequests } from '../../operator/src/lifecycle/capacity.js';
import { desiredGroupPods, podRevision } from '../../operator/src/groups/index.js';
import { nodeView } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const clone = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;
const size = (o: unknown) => JSON.stringify(o).length;

describe('cache transforms', () => {
  it('keep of a rank pod what the controller reads, and drop its rendered containers and volumes', () => {
    const bd = bloomDeployment(16);
    const [pod] = desiredGroupPods({ bd, group: 0, epoch: 3, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN });
    const full = clone({ ...pod!, metadata: { ...pod!.metadata, managedFields: [{ manager: 'bloom-operator', operation: 'Update' }] } });
    const cached = podForCache(forCache(clone(full)));
    assert.deepEqual(cached.metadata?.labels, full.metadata?.labels);
    assert.deepEqual(cached.metadata?.annotations, full.metadata?.annotations);
    assert.equal(cached.metadata?.managedFields, undefined);
    for (const key of ['schedulingGates', 'readinessGates', 'affinity', 'nodeName', 'tolerations', 'subdomain', 'hostname'] as const) {
      assert.deepEqual(cached.spec?.[key], full.spec?.[key], key);
    }
    assert.deepEqual(cached.spec?.containers.map((c) => c.resources), full.spec?.containers.map((c) => c.resources));
    assert.equal(cached.spec?.containers[0]?.env, undefined);
    assert.equal(cached.spec?.volumes, undefined);
    assert.ok(size(cached) < size(full) / 2, `${size(cached)} of ${size(full)} bytes kept`);
  });

  it('keep of any bound pod (the placement view) its node, phase and requests only', () => {
    const bd = bloomDeployment(16);
    const [pod] = desiredGroupPods({ bd, group: 0, epoch: 3, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN });
    const full = clone({ ...pod!, spec: { ...pod!.spec!, nodeName: 'gpu-node-3', overhead: { cpu: '250m' } }, status: { phase: 'Running', podIP: '10.0.0.9' } });
    full.metadata!.deletionTimestamp = new Date('2026-12-02T08:00:00Z');
    const cached = podUsageForCache(forCache(clone(full)));
    assert.deepEqual(podRequests(cached), podRequests(full));
    assert.deepEqual([cached.spec?.nodeName, cached.status, cached.metadata?.name, cached.metadata?.labels], ['gpu-node-3', { phase: 'Running' }, full.metadata?.name, undefined]);
    assert.ok(cached.metadata?.deletionTimestamp, 'a terminating pod still holds its resources');
    assert.ok(size(cached) < size(full) / 5, `${size(cached)} of ${size(full)} bytes kept`);
  });

  it('keep of a node exactly what nodeView reads', () => {
    const node: V1Node = {
      metadata: { name: 'n1', labels: { 'nvidia.com/gpu.clique': 'c1' } },
      spec: { unschedulable: true, taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] },
      status: {
        allocatable: { 'nvidia.com/gpu': '8' },
        conditions: [
          { type: 'MemoryPressure', status: 'False' },
          { type: 'Ready', status: 'True', lastTransitionTime: new Date('2026-12-01T00:00:00Z') },
        ],
        images: Array.from({ length: 50 }, (_, i) => ({ names: [`registry.example/image-${i}:v1`], sizeBytes: 1e9 })),
        nodeInfo: { architecture: 'amd64' } as NonNullable<V1Node['status']>['nodeInfo'],
      },
    };
    const cached = nodeForCache(clone(node));
    assert.deepEqual(nodeView(cached), nodeView(clone(node)));
    assert.equal(cached.status?.images, undefined);
    assert.deepEqual(cached.status?.conditions?.map((c) => c.type), ['Ready']);
  });
});
