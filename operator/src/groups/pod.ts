/** The desired rank pod: one GPU, one shard, one member of a tensor-parallel group. */
import type { V1Affinity, V1Container, V1ContainerPort, V1Pod, V1Probe, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment, BloomDeploymentSpec, ModelSource } from '../api/types.js';
import { rankEnv, type RankParams } from './env.js';
import { ANNOTATIONS, LABELS, groupEpochSelector, rankPodLabels } from './labels.js';
import { groupServiceName, rankHostname, rankPodName } from './names.js';
import { controllerOwnerReference } from './owner.js';
import { rankResources } from './resources.js';

/** Scheduling gate on every new rank pod; the operator lifts it on all ranks of a group at once (gang admission). */
export const GANG_SCHEDULING_GATE = 'inference.bloom.dev/gang';
export const WORKER_CONTAINER = 'worker';
export const MODEL_VOLUME = 'model';
export const SHM_VOLUME = 'dshm';
export const PORT_NAMES = { http: 'http', health: 'health', rendezvous: 'rendezvous' } as const;
export const HEALTH_PATHS = { live: '/healthz', ready: '/readyz' } as const;
/** Period of the startup probe; failureThreshold = ceil(startupTimeoutSeconds / period). */
export const STARTUP_PROBE_PERIOD_SECONDS = 10;

export interface RankPodParams extends RankParams {
  /** podRevision(spec) the pod is built from (label inference.bloom.dev/revision). */
  revision: string;
  /** Topology domain with room for the whole group, chosen by the operator: the ranks are pinned to it. */
  domain?: string;
}

function modelVolume(source: ModelSource): V1Volume {
  if (source.persistentVolumeClaim) {
    return { name: MODEL_VOLUME, persistentVolumeClaim: { claimName: source.persistentVolumeClaim.claimName, readOnly: true } };
  }
  if (source.hostPath) return { name: MODEL_VOLUME, hostPath: { path: source.hostPath.path, type: 'Directory' } };
  if (source.image) {
    return { name: MODEL_VOLUME, image: { reference: source.image.reference, pullPolicy: source.image.pullPolicy ?? 'IfNotPresent' } };
  }
  throw new Error('spec.model.source must set exactly one of persistentVolumeClaim, hostPath, image');
}

function volumes(spec: BloomDeploymentSpec): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  return {
    volumes: [
      { name: SHM_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: String(spec.worker.shmSize) } },
      modelVolume(spec.model.source),
    ],
    mounts: [
      { name: SHM_VOLUME, mountPath: '/dev/shm' },
      { name: MODEL_VOLUME, mountPath: spec.model.mountPath, readOnly: true },
    ],
  };
}

function httpProbe(path: string, periodSeconds: number, failureThreshold: number): V1Probe {
  return {
    httpGet: { path, port: PORT_NAMES.health },
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold,
    successThreshold: 1,
  };
}

/** Probes: startup covers shard loading + rendezvous; liveness and readiness take over after it. */
export function rankProbes(spec: BloomDeploymentSpec): Pick<V1Container, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> {
  const startupFailures = Math.max(1, Math.ceil(spec.failurePolicy.startupTimeoutSeconds / STARTUP_PROBE_PERIOD_SECONDS));
  return {
    startupProbe: httpProbe(HEALTH_PATHS.live, STARTUP_PROBE_PERIOD_SECONDS, startupFailures),
    readinessProbe: httpProbe(HEALTH_PATHS.ready, 5, 2),
    livenessProbe: httpProbe(HEALTH_PATHS.live, 10, 3),
  };
}

/** Rank 0 serves the HTTP API and hosts the rendezvous; every rank serves health and metrics. */
export function rankPorts(spec: BloomDeploymentSpec, rank: number): V1ContainerPort[] {
  const health: V1ContainerPort = { name: PORT_NAMES.health, containerPort: spec.worker.healthPort, protocol: 'TCP' };
  if (rank !== 0) return [health];
  return [
    { name: PORT_NAMES.http, containerPort: spec.worker.httpPort, protocol: 'TCP' },
    health,
    { name: PORT_NAMES.rendezvous, containerPort: spec.rendezvous.port, protocol: 'TCP' },
  ];
}

/**
 * Required pod affinity packs the ranks of one incarnation of a group into one topology domain.
 * Every rank carries the labels its own term selects, so the first rank is schedulable (the
 * scheduler admits a pod whose affinity term matches no pod yet if the pod matches the term itself).
 * With exclusive placement, required anti-affinity keeps other groups (of any BloomDeployment in
 * the namespace) out of the domain.
 */
export function rankAffinity(spec: BloomDeploymentSpec, bd: string, group: number, epoch: number, domain?: string): V1Affinity {
  const topologyKey = spec.placement.topologyKey;
  const affinity: V1Affinity = {
    ...(domain === undefined ? {} : {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: topologyKey, operator: 'In', values: [domain] }] }] } },
    }),
    podAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: groupEpochSelector(bd, group, epoch) }, topologyKey }],
    },
  };
  if (spec.placement.exclusive) {
    affinity.podAntiAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution: [
        {
          labelSelector: {
            matchExpressions: [
              { key: LABELS.groupKey, operator: 'Exists' },
              { key: LABELS.groupKey, operator: 'NotIn', values: [groupServiceName(bd, group)] },
            ],
          },
          topologyKey,
        },
      ],
    };
  }
  return affinity;
}

function workerContainer(spec: BloomDeploymentSpec, params: RankPodParams, mounts: V1VolumeMount[]): V1Container {
  const worker = spec.worker;
  const container: V1Container = {
    name: WORKER_CONTAINER,
    image: worker.image,
    env: rankEnv(params),
    ports: rankPorts(spec, params.rank),
    resources: rankResources(worker),
    volumeMounts: mounts,
    ...rankProbes(spec),
  };
  if (worker.imagePullPolicy) container.imagePullPolicy = worker.imagePullPolicy;
  if (worker.command) container.command = [...worker.command];
  if (worker.args) container.args = [...worker.args];
  return container;
}

/** The desired pod of one rank of one incarnation (epoch) of one group. Pure and deterministic. */
export function desiredRankPod(params: RankPodParams): V1Pod {
  const bd: BloomDeployment = withDefaults(params.bd);
  const { spec } = bd;
  const name = bd.metadata.name ?? '';
  const { group, rank, epoch, revision } = params;
  const { volumes: podVolumes, mounts } = volumes(spec);
  const placement = spec.placement;
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: rankPodName(name, group, rank, epoch),
      namespace: bd.metadata.namespace,
      labels: { ...rankPodLabels(name, group, rank, epoch, revision), ...(params.domain === undefined ? {} : { [LABELS.domain]: params.domain }) },
      annotations: { [ANNOTATIONS.tensorParallelSize]: String(spec.tensorParallelSize) },
      ownerReferences: [controllerOwnerReference(bd)],
    },
    spec: {
      hostname: rankHostname(name, group, rank),
      subdomain: groupServiceName(name, group),
      restartPolicy: 'Never',
      enableServiceLinks: false,
      terminationGracePeriodSeconds: spec.worker.terminationGracePeriodSeconds,
      schedulingGates: spec.gang.policy === 'SchedulingGates' ? [{ name: GANG_SCHEDULING_GATE }] : [],
      affinity: rankAffinity(spec, name, group, epoch, params.domain),
      containers: [workerContainer(spec, { ...params, bd }, mounts)],
      volumes: podVolumes,
    },
  };
  const podSpec = pod.spec!;
  if (spec.worker.serviceAccountName) podSpec.serviceAccountName = spec.worker.serviceAccountName;
  else podSpec.automountServiceAccountToken = false;
  if (placement.nodeSelector && Object.keys(placement.nodeSelector).length > 0) podSpec.nodeSelector = { ...placement.nodeSelector };
  if (placement.tolerations && placement.tolerations.length > 0) podSpec.tolerations = structuredClone(placement.tolerations);
  if (placement.priorityClassName) podSpec.priorityClassName = placement.priorityClassName;
  if (placement.schedulerName) podSpec.schedulerName = placement.schedulerName;
  return pod;
}

/** The desired pods of every rank (0..tensorParallelSize-1) of one incarnation of a group. */
export function desiredGroupPods(params: Omit<RankPodParams, 'rank'>): V1Pod[] {
  const tensorParallelSize = withDefaults(params.bd).spec.tensorParallelSize;
  return Array.from({ length: tensorParallelSize }, (_, rank) => desiredRankPod({ ...params, rank }));
}
