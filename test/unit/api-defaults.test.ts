import assert from 'node:assert/strict';
import { DEFAULTS, specWithDefaults, withDefaults, type BloomDeploymentManifest } from '../../operator/src/api/index.js';

const minimal: BloomDeploymentManifest = {
  metadata: { name: 'tiny', namespace: 'demo' },
  spec: { model: { source: { hostPath: { path: '/m' } } }, worker: { image: 'w:1' } },
};

describe('api: defaults', () => {
  it('fills every defaulted field of a minimal spec from the DEFAULTS table', () => {
    const { spec } = withDefaults(minimal);
    assert.equal(spec.replicas, DEFAULTS.replicas);
    assert.equal(spec.tensorParallelSize, 8);
    assert.equal(spec.gpusPerPod, 8, 'one 8-GPU pod per group');
    assert.deepEqual(spec.model, { format: 'bloom-int8', source: { hostPath: { path: '/m' } }, path: '', mountPath: '/models' });
    assert.deepEqual(spec.worker, {
      image: 'w:1',
      gpuResourceName: 'nvidia.com/gpu',
      shmSize: '16Gi', // 2Gi per rank of the 8-GPU pod
      httpPort: 8000,
      healthPort: 8001,
      terminationGracePeriodSeconds: 30,
      podSecurityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    });
    assert.deepEqual(spec.placement, { topologyKey: 'kubernetes.io/hostname', exclusive: false });
    assert.deepEqual(spec.gang, { policy: 'SchedulingGates' });
    assert.deepEqual(spec.rendezvous, { port: 29500, timeoutSeconds: 900, ephemeralPorts: { min: 40000, max: 44999 } });
    assert.deepEqual(spec.network, { policy: 'Isolated', httpFrom: [{ podSelector: {} }], healthFrom: [{ podSelector: {} }] });
    assert.deepEqual(spec.failurePolicy, DEFAULTS.failurePolicy);
    assert.deepEqual(spec.rollout, { maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 600 });
  });

  it('keeps values that are set, including zero and false', () => {
    const spec = specWithDefaults({
      replicas: 0,
      tensorParallelSize: 2,
      model: { source: { image: { reference: 'r/m:1' } } },
      worker: { image: 'w:1', httpPort: 9000 },
      placement: { exclusive: true },
      rollout: { maxSurge: 0, maxUnavailable: 1 },
    });
    assert.equal(spec.replicas, 0);
    assert.equal(spec.tensorParallelSize, 2);
    assert.equal(spec.worker.httpPort, 9000);
    assert.equal(spec.worker.healthPort, 8001);
    assert.deepEqual(spec.placement, { topologyKey: 'kubernetes.io/hostname', exclusive: true });
    assert.deepEqual(spec.rollout, { maxSurge: 0, maxUnavailable: 1, progressDeadlineSeconds: 600 });
    assert.deepEqual(spec.model.source, { image: { reference: 'r/m:1', pullPolicy: 'IfNotPresent' } });
  });

  it('derives gpusPerPod = min(TP, 8) and /dev/shm = 2Gi per rank of the pod, keeping what is set', () => {
    const derived = (spec: Record<string, unknown>) => {
      const s = specWithDefaults({ ...minimal.spec, ...spec } as never);
      return [s.gpusPerPod, s.worker.shmSize];
    };
    assert.deepEqual(derived({ tensorParallelSize: 1 }), [1, '2Gi']);
    assert.deepEqual(derived({ tensorParallelSize: 4 }), [4, '8Gi']);
    assert.deepEqual(derived({ tensorParallelSize: 16 }), [8, '16Gi']);
    assert.deepEqual(derived({ tensorParallelSize: 8, gpusPerPod: 2 }), [2, '4Gi']);
    assert.deepEqual(derived({ tensorParallelSize: 8, gpusPerPod: 4, worker: { image: 'w', shmSize: '1Gi' } }), [4, '1Gi']);
  });

  it('defaults a partly written nested object (objects created before a default existed)', () => {
    const { spec } = withDefaults({ ...minimal, spec: { ...minimal.spec, failurePolicy: { maxGroupRestarts: 2 } } });
    assert.equal(spec.failurePolicy.maxGroupRestarts, 2);
    assert.equal(spec.failurePolicy.startupTimeoutSeconds, 1800);
  });

  it('does not mutate its argument and is idempotent', () => {
    const before = structuredClone(minimal);
    const once = withDefaults(minimal);
    assert.deepEqual(minimal, before);
    assert.deepEqual(withDefaults(once), once);
  });

  it('keeps metadata and status', () => {
    const bd = withDefaults({ ...minimal, status: { replicas: 3 } });
    assert.equal(bd.metadata.name, 'tiny');
    assert.deepEqual(bd.status, { replicas: 3 });
  });
});
