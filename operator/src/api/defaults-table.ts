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
