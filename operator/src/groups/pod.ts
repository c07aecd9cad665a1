/**
 * The desired pod of a tensor-parallel group: gpusPerPod GPUs in one container whose launcher runs
 * one rank process per GPU (each loading one shard), so the ranks of a node share NVLink.
 */
import type { V1Affinity, V1Container, V1NodeAffinity, V1ContainerPort, V1Pod, V1PodAffinityTerm, V1Probe, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment, BloomDeploymentSpec, ModelSource } from '../api/types.js';
import { HOSTNAME_LABEL } from '../api/constants.js';
import { groupPodEnv, type PodEnvParams } from './env.js';
import { gangPodMetadata, podSchedulingGroup } from './gang.js';
import { ANNOTATIONS, LABELS, groupEpochSelector, groupPodLabels } from './labels.js';
import { groupPodName, groupServiceName, podHostname } from './names.js';
import { controllerOwnerReference } from './owner.js';
import { podResources } from './resources.js';
import { containerSecurityContext, podSecurityContext, securityVolumes } from './security.js';
import { groupShape } from './shape.js';

/** Scheduling gate on every new pod of a multi-pod group under gang policy SchedulingGates; the operator lifts it from pod 0 first, then from the others once pod 0 is bound. */
export const GANG_SCHEDULING_GATE = 'inference.bloom.dev/gang';
/**
 * Readiness gate of the pods of a multi-pod group: the operator sets this pod condition True only
 * while every pod of the group is ready, so a pod 0 that is ready on its own while another rank
 * hangs leaves the client Service's endpoints (the kubelet's Ready includes readiness gates).
 * A single-pod group needs none: its launcher is ready only when all its ranks are.
 */
export const GROUP_READY_CONDITION = 'inference.bloom.dev/group-ready';
export const WORKER_CONTAINER = 'worker';
export const MODEL_VOLUME = 'model';
export const SHM_VOLUME = 'dshm';
export const PORT_NAMES = { http: 'http', health: 'health', rendezvous: 'rendezvous' } as const;
/**
 * The launcher's endpoints on the health port (images/worker/README.md): /readyz is 200 only when every
 * local rank has its shard loaded and its communicator up and none is stuck; /livez fails when a local
 * rank exited, stopped reporting, or its engine loop made no progress for BLOOM_LIVENESS_TIMEOUT_SECONDS
 * (a hung collective); /healthz answers 200 while the launcher lives (not a probe: it says nothing of the ranks).
 */
export const HEALTH_PATHS = { health: '/healthz', live: '/livez', ready: '/readyz' } as const;
/** Period of the startup probe; its failureThreshold is derived from the spec (startupProbeBudgetSeconds). */
export const STARTUP_PROBE_PERIOD_SECONDS = 5;
/** Kept beyond the operator's startup timeout (and the ranks' rendezvous deadline) so that they act before the kubelet does. */
export const STARTUP_PROBE_MARGIN_SECONDS = 60;
/** Readiness: a stuck rank fails /readyz after BLOOM_READINESS_TIMEOUT_SECONDS (10 s); the pod is unready within two more periods. */
export const READINESS_PROBE = { periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 2 } as const;
/** Liveness: /livez already waits BLOOM_LIVENESS_TIMEOUT_SECONDS (90 s) of no progress; the kubelet rides out a slow answer or two. */
export const LIVENESS_PROBE = { periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 } as const;

export interface GroupPodParams extends PodEnvParams {
  /** podRevision(spec) the pod is built from (label inference.bloom.dev/revision). */
  revision: string;
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

function volumes(spec: BloomDeploymentSpec, pod: number): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const security = securityVolumes(spec, pod);
  return {
    volumes: [
      { name: SHM_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: String(spec.worker.shmSize) } },
      modelVolume(spec.model.source),
      ...security.volumes,
    ],
    mounts: [
      { name: SHM_VOLUME, mountPath: '/dev/shm' },
      { name: MODEL_VOLUME, mountPath: spec.model.mountPath, readOnly: true },
      ...security.mounts,
    ],
  };
}

function httpProbe(path: string, periodSeconds: number, timeoutSeconds: number, failureThreshold: number): V1Probe {
  return {
    httpGet: { path, port: PORT_NAMES.health },
    periodSeconds,
    timeoutSeconds,
    failureThreshold,
    successThreshold: 1,
  };
}

/**
 * How long the kubelet lets a pod's /readyz fail before it kills the container: the operator's own
 * startup timeout (the authority: it recreates the group, with a reason) or the ranks' rendezvous
 * deadline, whichever is longer, plus a margin. The kubelet counts from the container's start. The
 * operator's timer starts no later for the last pod of a group to be scheduled, so it expires first;
 * a pod that started before its peers were scheduled has ranks that give up by themselves at their
 * rendezvous deadline (counted from their own start, shard loading included), which expires first too.
 */
export function startupProbeBudgetSeconds(spec: BloomDeploymentSpec): number {
  return Math.max(spec.failurePolicy.startupTimeoutSeconds, spec.rendezvous.timeoutSeconds) + STARTUP_PROBE_MARGIN_SECONDS;
}

/**
 * Probes of the pod's launcher, all on its aggregated health port. Startup and readiness on /readyz (200
 * only once every local rank has its shard loaded and its communicator up, so the startup budget covers
 * shard loading and the rendezvous); liveness on /livez (the ranks' engine heartbeat), run only after startup.
 */
export function podProbes(spec: BloomDeploymentSpec): Pick<V1Container, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> {
  const startupFailures = Math.max(1, Math.ceil(startupProbeBudgetSeconds(spec) / STARTUP_PROBE_PERIOD_SECONDS));
  return {
    startupProbe: httpProbe(HEALTH_PATHS.ready, STARTUP_PROBE_PERIOD_SECONDS, 5, startupFailures),
    readinessProbe: httpProbe(HEALTH_PATHS.ready, READINESS_PROBE.periodSeconds, READINESS_PROBE.timeoutSeconds, READINESS_PROBE.failureThreshold),
    livenessProbe: httpProbe(HEALTH_PATHS.live, LIVENESS_PROBE.periodSeconds, LIVENESS_PROBE.timeoutSeconds, LIVENESS_PROBE.failureThreshold),
  };
}

/**
 * Pod 0 holds global rank 0: it serves the HTTP API and, in a multi-pod group, the rendezvous
 * (a single-pod group rendezvouses on the pod's loopback). Every pod serves health and metrics.
 */
export function podPorts(spec: BloomDeploymentSpec, pod: number): V1ContainerPort[] {
  const health: V1ContainerPort = { name: PORT_NAMES.health, containerPort: spec.worker.healthPort, protocol: 'TCP' };
  if (pod !== 0) return [health];
  const rendezvous: V1ContainerPort[] = groupShape(spec).pods > 1
    ? [{ name: PORT_NAMES.rendezvous, containerPort: spec.rendezvous.port, protocol: 'TCP' }]
    : [];
  return [{ name: PORT_NAMES.http, containerPort: spec.worker.httpPort, protocol: 'TCP' }, health, ...rendezvous];
}

/** Selects the pods of every other group (its group-key label differs). */
const otherGroups = (bd: string, group: number): Pick<V1PodAffinityTerm, 'labelSelector'> => ({
  labelSelector: {
    matchExpressions: [
      { key: LABELS.groupKey, operator: 'Exists' },
      { key: LABELS.groupKey, operator: 'NotIn', values: [groupServiceName(bd, group)] },
    ],
  },
});

/**
 * The pods of a multi-pod group: required pod affinity packs them into one topology domain (every
 * pod carries the labels its own term selects, so the first one is schedulable), and required
 * anti-affinity on the hostname puts them on distinct nodes (the ranks of one node share one pod).
 * With exclusive placement, required anti-affinity keeps other groups (of any BloomDeployment in
 * the namespace) out of the domain; without it, a preferred one steers the group's first pod to a
 * domain no other group uses yet. A single-pod group needs only the exclusive term, if any.
 */
export function podAffinity(spec: BloomDeploymentSpec, bd: string, group: number, epoch: number): V1Affinity | undefined {
  const topologyKey = spec.placement.topologyKey;
  const incarnation = { labelSelector: { matchLabels: groupEpochSelector(bd, group, epoch) } };
  const multiPod = groupShape(spec).pods > 1;
  const antiAffinity: V1PodAffinityTerm[] = multiPod ? [{ ...incarnation, topologyKey: HOSTNAME_LABEL }] : [];
  if (spec.placement.exclusive) antiAffinity.push({ ...otherGroups(bd, group), topologyKey });
  const affinity: V1Affinity = {};
  if (multiPod) affinity.podAffinity = { requiredDuringSchedulingIgnoredDuringExecution: [{ ...incarnation, topologyKey }] };
  const anti: NonNullable<V1Affinity['podAntiAffinity']> = {};
  if (antiAffinity.length > 0) anti.requiredDuringSchedulingIgnoredDuringExecution = antiAffinity;
  // The first pod of a multi-pod group prefers a domain without other groups (of any deployment or
  // namespace): the pods that follow it find room there more often than in a domain others already fill.
  if (multiPod && !spec.placement.exclusive) anti.preferredDuringSchedulingIgnoredDuringExecution = [{ weight: 100, podAffinityTerm: { ...otherGroups(bd, group), namespaceSelector: {}, topologyKey } }];
  if (Object.keys(anti).length > 0) affinity.podAntiAffinity = anti;
  return Object.keys(affinity).length > 0 ? affinity : undefined;
}

function workerContainer(spec: BloomDeploymentSpec, params: GroupPodParams, mounts: V1VolumeMount[]): V1Container {
  const worker = spec.worker;
  const container: V1Container = {
    name: WORKER_CONTAINER,
    image: worker.image,
    env: groupPodEnv(params),
    ports: podPorts(spec, params.pod),
    resources: podResources(spec),
    volumeMounts: mounts,
    securityContext: containerSecurityContext(spec),
    ...podProbes(spec),
  };
  if (worker.imagePullPolicy) container.imagePullPolicy = worker.imagePullPolicy;
  if (worker.command) container.command = [...worker.command];
  if (worker.args) container.args = [...worker.args];
  return container;
}

/** The node affinity that pins a pod to one topology domain: what the operator adds to a multi-pod group's pods as it lifts their gate. */
export function domainAffinity(topologyKey: string, domain: string): V1NodeAffinity {
  return { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: topologyKey, operator: 'In', values: [domain] }] }] } };
}

/** Whether the pods of a group are created gated (gang admission): only a multi-pod group needs it. */
export function isGangGated(spec: BloomDeploymentSpec): boolean {
  return groupShape(spec).pods > 1 && spec.gang.policy === 'SchedulingGates';
}

/** The desired pod `params.pod` of one incarnation (epoch) of one group. Pure and deterministic. */
export function desiredGroupPod(params: GroupPodParams): V1Pod {
  const bd: BloomDeployment = withDefaults(params.bd);
  const { spec } = bd;
  const name = bd.metadata.name ?? '';
  const { group, epoch, revision } = params;
  const { volumes: podVolumes, mounts } = volumes(spec, params.pod);
  const extra = spec.worker.podMetadata;
  const placement = spec.placement;
  const affinity = podAffinity(spec, name, group, epoch);
  const gang = gangPodMetadata(bd, group, epoch);
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: groupPodName(name, group, params.pod, epoch),
      namespace: bd.metadata.namespace,
      labels: { ...extra?.labels, ...groupPodLabels(name, group, params.pod, epoch, revision), ...gang.labels },
      annotations: { ...extra?.annotations, [ANNOTATIONS.tensorParallelSize]: String(spec.tensorParallelSize), [ANNOTATIONS.gpusPerPod]: String(spec.gpusPerPod), ...gang.annotations },
      ownerReferences: [controllerOwnerReference(bd)],
    },
    spec: {
      hostname: podHostname(name, group, params.pod),
      subdomain: groupServiceName(name, group),
      restartPolicy: 'Never',
      enableServiceLinks: false,
      securityContext: podSecurityContext(spec),
      terminationGracePeriodSeconds: spec.worker.terminationGracePeriodSeconds,
      schedulingGates: isGangGated(spec) ? [{ name: GANG_SCHEDULING_GATE }] : [],
      ...(groupShape(spec).pods > 1 ? { readinessGates: [{ conditionType: GROUP_READY_CONDITION }] } : {}),
      ...(affinity === undefined ? {} : { affinity }),
      ...podSchedulingGroup(bd, group, epoch),
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
  if (spec.worker.runtimeClassName) podSpec.runtimeClassName = spec.worker.runtimeClassName;
  if (spec.worker.imagePullSecrets && spec.worker.imagePullSecrets.length > 0) podSpec.imagePullSecrets = structuredClone(spec.worker.imagePullSecrets);
  return pod;
}

/** The desired pods (0..pods-1) of one incarnation of a group. */
export function desiredGroupPods(params: Omit<GroupPodParams, 'pod'>): V1Pod[] {
  const { pods } = groupShape(withDefaults(params.bd).spec);
  return Array.from({ length: pods }, (_, pod) => desiredGroupPod({ ...params, pod }));
}
