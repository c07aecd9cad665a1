/**
 * The ONE table of spec defaults. schema.ts writes these values into the CRD as OpenAPI
 * `default`s, and withDefaults (defaults.ts) applies the schema's defaults, so the API server
 * and the controller cannot disagree.
 */
export const DEFAULTS = {
  replicas: 1,
  tensorParallelSize: 8,
  /** gpusPerPod defaults to min(tensorParallelSize, this): one pod per 8-GPU node, all its ranks in one container. */
  maxGpusPerPod: 8,
  model: {
    format: 'bloom-int8',
    path: '',
    mountPath: '/models',
  },
  imageVolumePullPolicy: 'IfNotPresent',
  worker: {
    gpuResourceName: 'nvidia.com/gpu',
    /** shmSize defaults to this many GiB per rank of the pod (8 ranks: 16Gi). */
    shmPerRankGi: 2,
    httpPort: 8000,
    healthPort: 8001,
    terminationGracePeriodSeconds: 30,
    /** The worker image's user and group (images/worker/Dockerfile: USER 10001:10001). */
    uid: 10001,
    gid: 10001,
  },
  placement: {
    topologyKey: 'kubernetes.io/hostname',
    exclusive: false,
  },
  gang: {
    policy: 'SchedulingGates',
  },
  rendezvous: {
    port: 29500,
    timeoutSeconds: 900,
    /** The pods' ephemeral port range (net.ipv4.ip_local_port_range): 5000 ports, outside the other ports. */
    ephemeralPorts: { min: 40000, max: 44999 },
  },
  network: {
    policy: 'Isolated',
  },
  failurePolicy: {
    maxGroupRestarts: 5,
    restartWindowSeconds: 3600,
    backoffSeconds: 10,
    maxBackoffSeconds: 300,
    startupTimeoutSeconds: 1800,
    readinessLossSeconds: 60,
    nodeLostGraceSeconds: 120,
    placementTimeoutSeconds: 60,
  },
  rollout: {
    maxSurge: 1,
    maxUnavailable: 0,
    progressDeadlineSeconds: 600,
  },
} as const;
