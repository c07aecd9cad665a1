import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import {
  desiredGroupPods,
  desiredRankPod,
  rankIdentity,
  GANG_SCHEDULING_GATE,
  LABELS,
  podRevision,
} from '../../operator/src/groups/index.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

function groupPods(bd: BloomDeployment, group: number, epoch: number): V1Pod[] {
  const revision = podRevision(bd.spec);
  return Array.from({ length: bd.spec.tensorParallelSize }, (_, rank) =>
    desiredRankPod({ bd, group, rank, epoch, revision, clusterDomain: CLUSTER_DOMAIN }),
  );
}

/** Does an equality selector match a label set? */
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('groups: desired rank pod', () => {
  for (const tp of [1, 2, 4, 8]) {
    describe(`TP=${tp}`, () => {
      const bd = bloomDeployment(tp);
      const pods = groupPods(bd, 1, 3);

      it('has one pod per rank with deterministic names, hostnames and subdomain', () => {
        assert.equal(pods.length, tp);
        pods.forEach((pod, rank) => {
          assert.equal(pod.metadata?.name, `bloom-g1-r${rank}-e3`);
          assert.equal(pod.metadata?.namespace, 'serving');
          assert.equal(pod.spec?.hostname, `bloom-g1-r${rank}`);
          assert.equal(pod.spec?.subdomain, 'bloom-g1');
        });
        assert.equal(new Set(pods.map((p) => p.metadata?.name)).size, tp);
      });

      it('labels every pod with deployment, group, rank, epoch, revision', () => {
        pods.forEach((pod, rank) => {
          const labels = pod.metadata?.labels ?? {};
          assert.equal(labels[LABELS.deployment], 'bloom');
          assert.equal(labels[LABELS.group], '1');
          assert.equal(labels[LABELS.rank], String(rank));
          assert.equal(labels[LABELS.epoch], '3');
          assert.equal(labels[LABELS.revision], podRevision(bd.spec));
        });
      });

      it('is owned by the BloomDeployment (controller, blockOwnerDeletion)', () => {
        for (const pod of pods) {
          assert.deepEqual(pod.metadata?.ownerReferences, [
            { apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment', name: 'bloom', uid: '0f3c6a4e-uid', controller: true, blockOwnerDeletion: true },
          ]);
        }
      });

      it('is gated, never restarted in place, without service links', () => {
        for (const pod of pods) {
          assert.deepEqual(pod.spec?.schedulingGates, [{ name: GANG_SCHEDULING_GATE }]);
          assert.equal(GANG_SCHEDULING_GATE, 'inference.bloom.dev/gang');
          assert.equal(pod.spec?.restartPolicy, 'Never');
          assert.equal(pod.spec?.enableServiceLinks, false);
          assert.equal(pod.spec?.terminationGracePeriodSeconds, 30);
        }
      });

      it('packs the group with a required pod affinity that every rank (the first included) matches itself', () => {
        for (const pod of pods) {
          const terms = pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
          assert.equal(terms.length, 1);
          assert.equal(terms[0].topologyKey, 'kubernetes.io/hostname');
          const selector = terms[0].labelSelector?.matchLabels ?? {};
          assert.deepEqual(selector, { [LABELS.deployment]: 'bloom', [LABELS.group]: '1', [LABELS.epoch]: '3' });
          assert.ok(matches(selector, pod.metadata?.labels ?? {}), 'the pod must match its own affinity term');
          assert.equal(pod.spec?.affinity?.podAntiAffinity, undefined);
        }
      });

      it('runs one worker container with one GPU, shm, the read-only model and probes', () => {
        for (const pod of pods) {
          const [container, ...others] = pod.spec?.containers ?? [];
          assert.equal(others.length, 0);
          assert.equal(container.name, 'worker');
          assert.equal(container.image, 'bloom-worker:v1');
          assert.deepEqual(container.resources, { limits: { 'nvidia.com/gpu': '1' } });
          assert.deepEqual(container.volumeMounts, [
            { name: 'dshm', mountPath: '/dev/shm' },
            { name: 'model', mountPath: '/models', readOnly: true },
          ]);
          assert.deepEqual(pod.spec?.volumes, [
            { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } },
            { name: 'model', persistentVolumeClaim: { claimName: 'shards', readOnly: true } },
          ]);
          assert.equal(container.startupProbe?.httpGet?.path, '/healthz');
          assert.equal(container.startupProbe?.httpGet?.port, 'health');
          assert.equal(
            (container.startupProbe?.failureThreshold ?? 0) * (container.startupProbe?.periodSeconds ?? 0),
            bd.spec.failurePolicy.startupTimeoutSeconds,
          );
          assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
          assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
        }
      });

      it('exposes http and rendezvous on rank 0 only, health on every rank', () => {
        pods.forEach((pod, rank) => {
          const ports = Object.fromEntries((pod.spec?.containers[0].ports ?? []).map((p) => [p.name, p.containerPort]));
          assert.equal(ports.health, 8001);
          if (rank === 0) assert.deepEqual(ports, { http: 8000, health: 8001, rendezvous: 29500 });
          else assert.deepEqual(ports, { health: 8001 });
        });
      });

      it('writes distinct RANKs and one MASTER_ADDR', () => {
        const envOf = (pod: V1Pod, name: string) => pod.spec?.containers[0].env?.find((e) => e.name === name)?.value;
        assert.deepEqual(pods.map((p) => envOf(p, 'RANK')), Array.from({ length: tp }, (_, r) => String(r)));
        assert.deepEqual(new Set(pods.map((p) => envOf(p, 'MASTER_ADDR'))), new Set(['bloom-g1-r0.bloom-g1.serving.svc.cluster.local']));
      });
    });
  }

  it('keeps other groups out of the domain with exclusive placement, but not its own group', () => {
    const bd = bloomDeployment(8, { placement: { exclusive: true, topologyKey: 'example.com/nvlink-domain' } });
    const [pod] = groupPods(bd, 2, 0);
    const anti = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
    assert.equal(anti.length, 1);
    assert.equal(anti[0].topologyKey, 'example.com/nvlink-domain');
    assert.deepEqual(anti[0].labelSelector?.matchExpressions, [
      { key: LABELS.groupKey, operator: 'Exists' },
      { key: LABELS.groupKey, operator: 'NotIn', values: ['bloom-g2'] },
    ]);
    assert.equal(pod.metadata?.labels?.[LABELS.groupKey], 'bloom-g2', 'own group key is excluded from the anti-affinity');
    assert.equal(pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0].topologyKey, 'example.com/nvlink-domain');
  });

  it('applies placement, worker overrides and user resources', () => {
    const bd = bloomDeployment(4, {
      worker: {
        image: 'engine:2',
        imagePullPolicy: 'Always',
        command: ['python', '-m', 'engine'],
        args: ['--serve'],
        gpuResourceName: 'amd.com/gpu',
        shmSize: '2Gi',
        serviceAccountName: 'bloom-worker',
        resources: { limits: { memory: '64Gi' }, requests: { cpu: '8', memory: '48Gi' } },
      },
      placement: {
        nodeSelector: { pool: 'gpu' },
        tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
        priorityClassName: 'inference',
        schedulerName: 'custom',
      },
    });
    const [pod] = groupPods(bd, 0, 0);
    const spec = pod.spec!;
    const container = spec.containers[0];
    assert.equal(container.image, 'engine:2');
    assert.equal(container.imagePullPolicy, 'Always');
    assert.deepEqual(container.command, ['python', '-m', 'engine']);
    assert.deepEqual(container.args, ['--serve']);
    assert.deepEqual(container.resources, { limits: { memory: '64Gi', 'amd.com/gpu': '1' }, requests: { cpu: '8', memory: '48Gi' } });
    assert.deepEqual(spec.volumes?.[0], { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } });
    assert.equal(spec.serviceAccountName, 'bloom-worker');
    assert.equal(spec.automountServiceAccountToken, undefined);
    assert.deepEqual(spec.nodeSelector, { pool: 'gpu' });
    assert.deepEqual(spec.tolerations, [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.equal(spec.priorityClassName, 'inference');
    assert.equal(spec.schedulerName, 'custom');
  });

  it('respects a GPU count the user sets', () => {
    const bd = bloomDeployment(2, { worker: { image: 'w', resources: { limits: { 'nvidia.com/gpu': 2 } } } });
    const [pod] = groupPods(bd, 0, 0);
    assert.deepEqual(pod.spec?.containers[0].resources, { limits: { 'nvidia.com/gpu': '2' } });
  });

  it('mounts hostPath and image model sources', () => {
    const host = groupPods(bloomDeployment(1, { model: { source: { hostPath: { path: '/data' } } } }), 0, 0)[0];
    assert.deepEqual(host.spec?.volumes?.[1], { name: 'model', hostPath: { path: '/data', type: 'Directory' } });
    const image = groupPods(bloomDeployment(1, { model: { source: { image: { reference: 'reg/m:1' } }, mountPath: '/weights' } }), 0, 0)[0];
    assert.deepEqual(image.spec?.volumes?.[1], { name: 'model', image: { reference: 'reg/m:1', pullPolicy: 'IfNotPresent' } });
    assert.deepEqual(image.spec?.containers[0].volumeMounts?.[1], { name: 'model', mountPath: '/weights', readOnly: true });
  });

  it('does not mount a service account token by default', () => {
    const [pod] = groupPods(bloomDeployment(1), 0, 0);
    assert.equal(pod.spec?.automountServiceAccountToken, false);
    assert.equal(pod.spec?.serviceAccountName, undefined);
  });

  it('is deterministic and does not mutate the BloomDeployment', () => {
    const bd = bloomDeployment(2);
    const before = structuredClone(bd);
    assert.deepEqual(groupPods(bd, 0, 1), groupPods(bd, 0, 1));
    assert.deepEqual(bd, before);
  });

  it('desiredGroupPods builds every rank of the group', () => {
    const bd = bloomDeployment(4);
    const revision = podRevision(bd.spec);
    const pods = desiredGroupPods({ bd, group: 1, epoch: 3, revision, clusterDomain: CLUSTER_DOMAIN });
    assert.deepEqual(pods, groupPods(bd, 1, 3));
  });

  it('rankIdentity reads a rank pod back from its labels', () => {
    const bd = bloomDeployment(2);
    const [, pod] = groupPods(bd, 5, 12);
    assert.deepEqual(rankIdentity(pod.metadata?.labels), { deployment: 'bloom', group: 5, rank: 1, epoch: 12, revision: podRevision(bd.spec) });
    assert.equal(rankIdentity({ [LABELS.deployment]: 'bloom' }), undefined);
    assert.equal(rankIdentity({ ...pod.metadata?.labels, [LABELS.epoch]: 'x' }), undefined);
    assert.equal(rankIdentity(undefined), undefined);
  });
});
