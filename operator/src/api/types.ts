/**
 * TypeScript shape of `inference.bloom.dev/v1alpha1` BloomDeployment.
 *
 * The spec types describe an object AFTER defaulting (what the API server stores and what
 * `withDefaults` returns): fields with a schema default are not optional here. What a user may
 * write is `BloomDeploymentManifest` (every field optional). The OpenAPI schema that the CRD is
 * generated from lives in schema.ts; the defaults of both come from defaults-table.ts.
 */
import type { V1ObjectMeta } from '@kubernetes/client-node';

export type ModelFormat = 'bloom-int8';
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';
/**
 * How a multi-pod group is admitted all-or-nothing and placed in one topology domain: by the
 * operator's own scheduling gate (a domain chosen from a cluster-wide view), by Kueue (pod group, quota and topology-aware
 * scheduling), or by the kube-scheduler's gang scheduling (scheduling.k8s.io PodGroup).
 */
export type GangPolicy = 'SchedulingGates' | 'Kueue' | 'PodGroup';
/** A resource quantity as Kubernetes accepts it: "16Gi", "500m" or a plain number. */
export type Quantity = string | number;

export interface PersistentVolumeClaimSource {
  claimName: string;
}
export interface HostPathSource {
  path: string;
}
export interface ImageSource {
  reference: string;
  pullPolicy?: PullPolicy;
}
/** Exactly one member is set. */
export interface ModelSource {
  persistentVolumeClaim?: PersistentVolumeClaimSource;
  hostPath?: HostPathSource;
  image?: ImageSource;
}

export interface ModelSpec {
  format: ModelFormat;
  source: ModelSource;
  /** Sub-path inside the volume; "" is the volume root. */
  path: string;
  mountPath: string;
}

export interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}
export interface EnvVarSource {
  secretKeyRef?: KeyRef;
  configMapKeyRef?: KeyRef;
  fieldRef?: { fieldPath: string; apiVersion?: string };
}
export interface WorkerEnvVar {
  name: string;
  value?: string;
  valueFrom?: EnvVarSource;
}
/** A key of a Secret in the BloomDeployment namespace. */
export interface SecretKeyRef {
  name: string;
  key: string;
}
export interface SeccompProfile {
  type: 'RuntimeDefault' | 'Localhost' | 'Unconfined';
  localhostProfile?: string;
}
export interface SELinuxOptions {
  user?: string;
  role?: string;
  type?: string;
  level?: string;
}
/** Fields a pod's and a container's securityContext share (as in the Pod API). */
export interface CommonSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  seccompProfile?: SeccompProfile;
  seLinuxOptions?: SELinuxOptions;
}
/** The worker container's securityContext (a subset of the Pod API's; defaults pass the restricted Pod Security Standard). */
export interface ContainerSecurityContext extends CommonSecurityContext {
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}
/** The rank pods' securityContext (a subset of the Pod API's; defaults pass the restricted Pod Security Standard). */
export interface PodSecurityContext extends CommonSecurityContext {
  fsGroup?: number;
  fsGroupChangePolicy?: 'Always' | 'OnRootMismatch';
  supplementalGroups?: number[];
}
export interface PodMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface ResourceRequirements {
  limits?: Record<string, Quantity>;
  requests?: Record<string, Quantity>;
}

export interface WorkerSpec {
  image: string;
  imagePullPolicy?: PullPolicy;
  command?: string[];
  args?: string[];
  env?: WorkerEnvVar[];
  resources?: ResourceRequirements;
  gpuResourceName: string;
  /** Size of the pod's memory-backed /dev/shm, shared by its ranks; derived default DEFAULTS.worker.shmPerRankGi per rank. */
  shmSize: Quantity;
  httpPort: number;
  healthPort: number;
  serviceAccountName?: string;
  terminationGracePeriodSeconds: number;
  /** Defaulted: non-root user 10001 (the worker image's), RuntimeDefault seccomp. */
  podSecurityContext: PodSecurityContext;
  /** Defaulted: no privilege escalation, every capability dropped, read-only root filesystem. */
  securityContext: ContainerSecurityContext;
  runtimeClassName?: string;
  imagePullSecrets?: Array<{ name: string }>;
  /** Extra labels and annotations of the rank pods; the operator's own keys are refused. */
  podMetadata?: PodMetadata;
  /** Bearer key of global rank 0's HTTP API, mounted read-only as a file (BLOOM_API_KEY_FILE). */
  apiKeySecretRef?: SecretKeyRef;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface PlacementSpec {
  topologyKey: string;
  exclusive: boolean;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  priorityClassName?: string;
  schedulerName?: string;
}

export interface GangSpec {
  policy: GangPolicy;
  /** Kueue LocalQueue of the group pods (required with policy Kueue). */
  queueName?: string;
}

/** Inclusive port range. */
export interface PortRange {
  min: number;
  max: number;
}

export interface RendezvousSpec {
  port: number;
  timeoutSeconds: number;
  nccl?: Record<string, string>;
  /** The pods' net.ipv4.ip_local_port_range: the ports NCCL, gloo and the store's clients bind to. */
  ephemeralPorts: PortRange;
}

/** A NetworkPolicy peer (as in the NetworkPolicy API). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}
export interface NetworkPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
export type NetworkPolicyMode = 'Isolated' | 'None';
export interface NetworkSpec {
  /** Isolated: one NetworkPolicy per group; None: none. */
  policy: NetworkPolicyMode;
  /** Who may reach global rank 0's HTTP port. */
  httpFrom: NetworkPeer[];
  /** Who may reach every pod's health and metrics port (the metrics scraper). */
  healthFrom: NetworkPeer[];
}

export interface FailurePolicySpec {
  maxGroupRestarts: number;
  restartWindowSeconds: number;
  backoffSeconds: number;
  maxBackoffSeconds: number;
  startupTimeoutSeconds: number;
  readinessLossSeconds: number;
  nodeLostGraceSeconds: number;
  placementTimeoutSeconds: number;
}

export interface RolloutSpec {
  maxSurge: number;
  maxUnavailable: number;
  /** Seconds a rollout or scale may go without progress before Progressing=False (ProgressDeadlineExceeded) and Stalled=True. */
  progressDeadlineSeconds: number;
}

export interface BloomDeploymentSpec {
  replicas: number;
  tensorParallelSize: number;
  /** GPUs, and so rank processes, per pod; derived default min(tensorParallelSize, DEFAULTS.maxGpusPerPod). */
  gpusPerPod: number;
  model: ModelSpec;
  worker: WorkerSpec;
  placement: PlacementSpec;
  gang: GangSpec;
  rendezvous: RendezvousSpec;
  network: NetworkSpec;
  failurePolicy: FailurePolicySpec;
  rollout: RolloutSpec;
}

/** Phase of the whole BloomDeployment. */
export type DeploymentPhase = 'Pending' | 'Progressing' | 'Available' | 'Degraded' | 'Failed';
export const DEPLOYMENT_PHASES: readonly DeploymentPhase[] = ['Pending', 'Progressing', 'Available', 'Degraded', 'Failed'];

/**
 * Phase of one tensor-parallel group:
 * Pending (pods created, gated or not yet scheduled), Starting (scheduled, loading shards / rendezvous),
 * Ready (every pod, so every rank, ready), Restarting (being torn down to be recreated with a new epoch),
 * Failed (gave up: maxGroupRestarts exceeded within restartWindowSeconds).
 */
export type GroupPhase = 'Pending' | 'Starting' | 'Ready' | 'Restarting' | 'Failed';
export const GROUP_PHASES: readonly GroupPhase[] = ['Pending', 'Starting', 'Ready', 'Restarting', 'Failed'];

/** Same shape as metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}
export const CONDITION_TYPES = {
  available: 'Available', progressing: 'Progressing', degraded: 'Degraded', replicaFailure: 'ReplicaFailure',
  /** kstatus (Flux, kpt, cli-utils): Ready is the summary; Reconciling and Stalled are abnormal-true, present only while True. */
  ready: 'Ready', reconciling: 'Reconciling', stalled: 'Stalled',
} as const;

/** Workload failures are charged to maxGroupRestarts; disruptions (the infrastructure took the group away) are not. */
export type FailureClass = 'Workload' | 'Disruption';

export interface GroupFailure {
  /** Short CamelCase cause, e.g. RankFailed, StartupTimeout, ReadinessLost, NodeLost. */
  reason: string;
  class?: FailureClass;
  message?: string;
  /** Index of the pod (NODE_RANK) whose failure triggered the restart, if one did. */
  pod?: number;
  time: string;
}

export interface GroupStatus {
  index: number;
  phase: GroupPhase;
  epoch: number;
  revision: string;
  /** Pods of the current incarnation that are Ready. */
  readyPods: number;
  /** Rank processes in those pods (readyPods x gpusPerPod). */
  readyRanks: number;
  /** Times this group has been recreated after a workload failure. */
  restarts: number;
  /** Times this group has been recreated after a disruption (not charged to the restart budget). */
  disruptions?: number;
  /** Times of the restarts inside the current failurePolicy.restartWindowSeconds. */
  recentRestartTimes?: string[];
  /** Not before this time will the group be recreated again (back-off). */
  nextRestartTime?: string;
  lastFailure?: GroupFailure;
  /** MASTER_ADDR of the group: 127.0.0.1 for a single-pod group, else the DNS name of pod 0. */
  leaderAddress?: string;
  lastTransitionTime?: string;
  message?: string;
}

export interface BloomDeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  currentRevision?: string;
  updateRevision?: string;
  selector?: string;
  /** Pods per group (tensorParallelSize / gpusPerPod) of the current spec. */
  podsPerGroup?: number;
  /** GPUs (rank processes) per pod of the current spec. */
  gpusPerPod?: number;
  phase?: DeploymentPhase;
  /** While a rollout or scale is in progress: when it last made progress; the progress deadline counts from it. */
  lastProgressTime?: string;
  conditions?: Condition[];
  groups?: GroupStatus[];
}

export interface BloomDeployment {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: BloomDeploymentSpec;
  status?: BloomDeploymentStatus;
}

export interface BloomDeploymentList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: BloomDeployment[];
}

/** Recursively optional: what a user may write before defaulting. */
export type DeepPartial<T> = T extends readonly (infer U)[]
  ? DeepPartial<U>[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** A BloomDeployment as written by a user or read from an older API server: any spec field may be missing. */
export interface BloomDeploymentManifest {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec?: DeepPartial<BloomDeploymentSpec>;
  status?: BloomDeploymentStatus;
}
