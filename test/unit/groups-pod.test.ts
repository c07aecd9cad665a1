import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import {
  desiredGroupPod,
  desiredGroupPods,
  GANG_SCHEDULING_GATE,
  LABELS,
  podRevision,
  STARTUP_PROBE_MARGIN_SECONDS,
  STARTUP_PROBE_PERIOD_SECONDS,
  startupProbeBudgetSeconds,
} from '../../operator/src/groups/index.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { podEpoch, podGroup, podIndex } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const CLIQUE = 'nvidia.com/gpu.clique';

function groupPods(bd: BloomDeployment, group: number, epoch: number): V1Pod[] {
  return desiredGroupPods({ bd, group, epoch, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN });
}

/** A deployment of the given shape; a multi-pod group is packed into an NVLink clique (admission requires a multi-node domain). */
function shaped(tp: number, gpusPerPod: number, spec: Parameters<typeof bloomDeployment>[1] = {}): BloomDeployment {
  const multiPod = tp / gpusPerPod > 1;
  return bloomDeployment(tp, { gpusPerPod, ...(multiPod ? { placement: { topologyKey: CLIQUE } } : {}), ...spec });
}

/** Does an equality selector match a label set? */
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const envOf = (pod: V1Pod, name: string) => pod.spec?.containers[0].env?.find((e) => e.name === name)?.value;

describe('groups: desired group pods', () => {
  for (const [tp, gpusPerPod] of [[8, 8], [8, 4], [8, 2], [4, 4], [1, 1]] as const) {
    const podsPerGroup = tp / gpusPerPod;
    describe(`TP=${tp}, gpusPerPod=${gpusPerPod} (${podsPerGroup} pod(s) per group)`, () => {
      const bd = shaped(tp, gpusPerPod);
      const pods = groupPods(bd, 1, 3);

      it('has one pod per gpusPerPod ranks with deterministic names, hostnames and subdomain', () => {
        assert.equal(pods.length, podsPerGroup);
        pods.forEach((pod, index) => {
          assert.equal(pod.metadata?.name, `bloom-g1-p${index}-e3`);
          assert.equal(pod.metadata?.namespace, 'serving');
          assert.equal(pod.spec?.hostname, `bloom-g1-p${index}`);
          assert.equal(pod.spec?.subdomain, 'bloom-g1');
          assert.equal(pod.metadata?.labels?.[LABELS.pod], String(index));
        });
      });

      it('requests gpusPerPod GPUs and sizes /dev/shm for the ranks that share it', () => {
        for (const pod of pods) {
          const [container, ...others] = pod.spec?.containers ?? [];
          assert.equal(others.length, 0, 'one container: its ranks must see each other\'s GPUs (CUDA IPC, NVLink)');
          assert.deepEqual(container.resources, { limits: { 'nvidia.com/gpu': String(gpusPerPod) } });
          assert.deepEqual(pod.spec?.volumes?.[0], { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: `${2 * gpusPerPod}Gi` } });
        }
      });

      it('writes the torchrun shape of the group, with PET_* mirrors, and no per-process variable', () => {
        const master = podsPerGroup === 1 ? '127.0.0.1' : 'bloom-g1-p0.bloom-g1.serving.svc.cluster.local';
        pods.forEach((pod, index) => {
          const shape: Record<string, string | undefined> = Object.fromEntries(['WORLD_SIZE', 'NNODES', 'NODE_RANK', 'NPROC_PER_NODE', 'MASTER_ADDR', 'MASTER_PORT'].map((n) => [n, envOf(pod, n)]));
          assert.deepEqual({ ...shape }, {
            WORLD_SIZE: String(tp), NNODES: String(podsPerGroup), NODE_RANK: String(index), NPROC_PER_NODE: String(gpusPerPod),
            MASTER_ADDR: master, MASTER_PORT: '29500',
          });
          for (const n of ['NNODES', 'NODE_RANK', 'NPROC_PER_NODE', 'MASTER_ADDR', 'MASTER_PORT']) assert.equal(envOf(pod, `PET_${n}`), shape[n], `PET_${n}`);
          for (const n of ['RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE']) assert.equal(envOf(pod, n), undefined, `${n} is the launcher's`);
        });
        const ranks = pods.flatMap((pod) => Array.from({ length: gpusPerPod }, (_, local) => Number(envOf(pod, 'NODE_RANK')) * gpusPerPod + local));
        assert.deepEqual(ranks, Array.from({ length: tp }, (_, r) => r), 'RANK = NODE_RANK * NPROC_PER_NODE + LOCAL_RANK covers 0..TP-1 once');
      });

      it('gates, packs and spreads only a multi-pod group', () => {
        for (const pod of pods) {
          const affinity = pod.spec?.affinity;
          if (podsPerGroup === 1) {
            assert.deepEqual(pod.spec?.schedulingGates, [], 'a single-pod group needs no gang gate');
            assert.equal(affinity, undefined, 'a single pod needs no affinity: the scheduler fits it on one node');
            continue;
          }
          assert.deepEqual(pod.spec?.schedulingGates, [{ name: GANG_SCHEDULING_GATE }]);
          const pack = affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
          assert.equal(pack.length, 1);
          assert.equal(pack[0].topologyKey, CLIQUE);
          const incarnation = { [LABELS.deployment]: 'bloom', [LABELS.group]: '1', [LABELS.epoch]: '3' };
          assert.deepEqual(pack[0].labelSelector?.matchLabels, incarnation);
          assert.ok(matches(incarnation, pod.metadata?.labels ?? {}), 'the pod must match its own affinity term');
          const spread = affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
          assert.deepEqual(spread, [{ labelSelector: { matchLabels: incarnation }, topologyKey: 'kubernetes.io/hostname' }], 'pods of one group on distinct nodes');
        }
      });

      it('exposes http on pod 0, the rendezvous port on pod 0 of a multi-pod group, health on every pod', () => {
        pods.forEach((pod, index) => {
          const ports = Object.fromEntries((pod.spec?.containers[0].ports ?? []).map((p) => [p.name, p.containerPort]));
          if (index > 0) assert.deepEqual(ports, { health: 8001 });
          else if (podsPerGroup === 1) assert.deepEqual(ports, { http: 8000, health: 8001 });
          else assert.deepEqual(ports, { http: 8000, health: 8001, rendezvous: 29500 });
        });
      });

      it('is owned by the BloomDeployment, never restarted in place, without service links', () => {
        for (const pod of pods) {
          assert.deepEqual(pod.metadata?.ownerReferences, [
            { apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment', name: 'bloom', uid: '0f3c6a4e-uid', controller: true, blockOwnerDeletion: true },
          ]);
          assert.equal(pod.spec?.restartPolicy, 'Never');
          assert.equal(pod.spec?.enableServiceLinks, false);
          assert.equal(pod.spec?.terminationGracePeriodSeconds, 30);
        }
      });
    });
  }

  it('defaults gpusPerPod to min(TP, 8): TP=8 is one 8-GPU pod, TP=16 two', () => {
    assert.equal(groupPods(bloomDeployment(8), 0, 1).length, 1);
    assert.equal(groupPods(bloomDeployment(2), 0, 1)[0].spec?.containers[0].resources?.limits?.['nvidia.com/gpu'], '2');
    const tp16 = groupPods(bloomDeployment(16, { placement: { topologyKey: CLIQUE } }), 0, 1);
    assert.deepEqual(tp16.map((p) => p.spec?.containers[0].resources?.limits?.['nvidia.com/gpu']), ['8', '8']);
  });

  it('labels every pod with deployment, group, pod index, epoch, revision', () => {
    const bd = shaped(8, 4);
    groupPods(bd, 1, 3).forEach((pod, index) => {
      const labels = pod.metadata?.labels ?? {};
      assert.equal(labels[LABELS.deployment], 'bloom');
      assert.equal(labels[LABELS.group], '1');
      assert.equal(labels[LABELS.pod], String(index));
      assert.equal(labels[LABELS.epoch], '3');
      assert.equal(labels[LABELS.revision], podRevision(bd.spec));
    });
  });

  it('runs the launcher with probes on the pod\'s aggregated health port', () => {
    const [pod] = groupPods(bloomDeployment(8), 0, 0);
    const container = pod.spec!.containers[0];
    assert.deepEqual(container.volumeMounts, [
      { name: 'dshm', mountPath: '/dev/shm' },
      { name: 'model', mountPath: '/models', readOnly: true },
      { name: 'scratch', mountPath: '/tmp' },
    ]);
    assert.deepEqual(pod.spec?.volumes?.[1], { name: 'model', persistentVolumeClaim: { claimName: 'shards', readOnly: true } });
    const health = container.ports?.find((p) => p.name === 'health');
    assert.equal(health?.containerPort, 8001);
    // startup and readiness on /readyz (shard loaded, communicator up), liveness on /livez (the engine heartbeat); never /healthz
    assert.deepEqual(container.startupProbe, {
      httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 372, successThreshold: 1,
    });
    assert.deepEqual(container.readinessProbe, {
      httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 2, successThreshold: 1,
    });
    assert.deepEqual(container.livenessProbe, {
      httpGet: { path: '/livez', port: 'health' }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3, successThreshold: 1,
    });
  });

  it('gives the startup probe at least the operator\'s startup timeout and the ranks\' rendezvous deadline, plus a margin', () => {
    const budget = (bd: BloomDeployment): number => {
      const probe = groupPods(bd, 0, 0)[0].spec!.containers[0].startupProbe!;
      return probe.failureThreshold! * probe.periodSeconds!;
    };
    // defaults: startupTimeoutSeconds 1800 > rendezvous.timeoutSeconds 900
    assert.equal(budget(bloomDeployment(8)), 1800 + STARTUP_PROBE_MARGIN_SECONDS);
    const fp = (startupTimeoutSeconds: number) => ({ ...bloomDeployment(8).spec.failurePolicy, startupTimeoutSeconds });
    const rdv = (timeoutSeconds: number) => ({ ...bloomDeployment(8).spec.rendezvous, timeoutSeconds });
    // a long startup timeout: the kubelet waits longer still, so the operator's timeout stays the authority
    assert.equal(budget(bloomDeployment(8, { failurePolicy: fp(7200) })), 7260);
    // an odd value rounds up to whole periods, never down
    const odd = budget(bloomDeployment(8, { failurePolicy: fp(3601) }));
    assert.ok(odd >= 3601 + STARTUP_PROBE_MARGIN_SECONDS && odd < 3601 + STARTUP_PROBE_MARGIN_SECONDS + STARTUP_PROBE_PERIOD_SECONDS, String(odd));
    // a short startup timeout: the ranks' own rendezvous deadline (counted from their start) is covered too
    assert.equal(budget(bloomDeployment(8, { failurePolicy: fp(300) })), 900 + STARTUP_PROBE_MARGIN_SECONDS);
    assert.equal(budget(bloomDeployment(8, { failurePolicy: fp(300), rendezvous: rdv(120) })), 300 + STARTUP_PROBE_MARGIN_SECONDS);
    for (const bd of [bloomDeployment(8), shaped(8, 4), bloomDeployment(8, { failurePolicy: fp(60), rendezvous: rdv(30) })]) {
      assert.equal(budget(bd), startupProbeBudgetSeconds(bd.spec));
      assert.ok(budget(bd) >= bd.spec.failurePolicy.startupTimeoutSeconds);
    }
  });

  it('keeps other groups out of the domain with exclusive placement, but not its own group', () => {
    for (const bd of [bloomDeployment(8, { placement: { exclusive: true, topologyKey: 'example.com/nvlink-domain' } }), shaped(8, 4, { placement: { exclusive: true, topologyKey: 'example.com/nvlink-domain' } })]) {
      const [pod] = groupPods(bd, 2, 0);
      const anti = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      const exclusive = anti.filter((t) => t.topologyKey === 'example.com/nvlink-domain');
      assert.equal(exclusive.length, 1);
      assert.deepEqual(exclusive[0].labelSelector?.matchExpressions, [
        { key: LABELS.groupKey, operator: 'Exists' },
        { key: LABELS.groupKey, operator: 'NotIn', values: ['bloom-g2'] },
      ]);
      assert.equal(pod.metadata?.labels?.[LABELS.groupKey], 'bloom-g2', 'own group key is excluded from the anti-affinity');
    }
  });

  it('never pins a multi-pod group to a node or domain: it follows its pod 0 by pod affinity', () => {
    const bd = shaped(8, 4);
    const pod = desiredGroupPod({ bd, group: 0, pod: 1, epoch: 2, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN });
    assert.equal(pod.spec?.affinity?.nodeAffinity, undefined);
    assert.equal(pod.spec?.nodeSelector, undefined);
    assert.deepEqual(pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.map((t) => t.topologyKey), [CLIQUE]);
  });

  it('applies placement, worker overrides and user resources', () => {
    const bd = bloomDeployment(4, {
      worker: {
        image: 'engine:2',
        imagePullPolicy: 'Always',
        command: ['torchrun', 'serve.py'],
        args: ['--serve'],
        gpuResourceName: 'amd.com/gpu',
        shmSize: '3Gi',
        serviceAccountName: 'bloom-worker',
        resources: { limits: { memory: '64Gi' }, requests: { cpu: '8', memory: '48Gi', 'amd.com/gpu': 4 } },
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
    assert.deepEqual(container.command, ['torchrun', 'serve.py']);
    assert.deepEqual(container.args, ['--serve']);
    assert.deepEqual(container.resources, { limits: { memory: '64Gi', 'amd.com/gpu': '4' }, requests: { cpu: '8', memory: '48Gi', 'amd.com/gpu': '4' } });
    assert.deepEqual(spec.volumes?.[0], { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '3Gi' } });
    assert.equal(spec.serviceAccountName, 'bloom-worker');
    assert.equal(spec.automountServiceAccountToken, undefined);
    assert.deepEqual(spec.nodeSelector, { pool: 'gpu' });
    assert.deepEqual(spec.tolerations, [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.equal(spec.priorityClassName, 'inference');
    assert.equal(spec.schedulerName, 'custom');
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
    const bd = shaped(8, 2);
    const before = structuredClone(bd);
    assert.deepEqual(groupPods(bd, 0, 1), groupPods(bd, 0, 1));
    assert.deepEqual(bd, before);
  });

  it('is read back by the controller from its labels, an older operator\'s pods (no pod label) included', () => {
    const bd = shaped(8, 4);
    const [, pod] = groupPods(bd, 5, 12);
    assert.deepEqual([podGroup(pod), podIndex(pod), podEpoch(pod)], [5, 1, 12]);
    const legacy = { metadata: { labels: { [LABELS.deployment]: 'bloom', [LABELS.group]: '5', 'inference.bloom.dev/rank': '3', [LABELS.epoch]: '2' } } };
    assert.deepEqual([podGroup(legacy), podEpoch(legacy)], [5, 2], 'still counted in its group, so its replacement deletes it');
    assert.ok(Number.isNaN(podIndex(legacy)));
    for (const bad of ['01', 'x', '-1', '']) assert.ok(Number.isNaN(podGroup({ metadata: { labels: { [LABELS.group]: bad } } })), bad);
  });
});
