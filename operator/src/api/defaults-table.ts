/**
 * The ONE table of spec defaults. schema.ts writes these values into the CRD as OpenAPI
 * `default`s, and withDefaults (defaults.ts) applies the schema's defaults, so the API server
 * and the controller cannot disagree.
 */
export const DEFAULTS = {
  replicas: 1,
  tensorParallelSize: 8,
  model: {
    format: 'bloom-int8',
    path: '',
    mountPath: '/models',
  },
  imageVolumePullPolicy: 'IfNotPresent',
  worker: {
    gpuResourceName: 'nvidia.com/gpu',
    gpusPerRank: 1,
    shmSize: '16Gi',
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
  },
} as const;
