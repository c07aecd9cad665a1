/** OpenAPI schema of BloomDeployment.spec (the single definition the CRD is generated from). */
import { HOSTNAME_LABEL, MAX_GPUS_PER_POD, MAX_REPLICAS, TENSOR_PARALLEL_SIZES } from './constants.js';
import { DEFAULTS } from './defaults-table.js';
import {
  NCCL_ENV_PREFIX,
  RESERVED_ENV_NAMES,
  RESERVED_ENV_PREFIX,
  USER_SETTABLE_BLOOM_ENV_NAMES,
  isReservedEnvName,
} from './env-contract.js';
import { array, boolean, defaultedSection, integer, object, quantity, rule, string, stringMap, type CelRule, type Schema } from './schema-builder.js';
import { apiKeySecretRefSchema, containerSecurityContextSchema, networkSchema, podMetadataSchema, podSecurityContextSchema } from './schema-security.js';
import type { ModelSource, PortRange, Quantity, WorkerEnvVar } from './types.js';

/** Qualified name (label key, extended resource name): optional DNS-subdomain prefix and '/', then a name of at most 63 characters. */
export const QUALIFIED_NAME_REGEX =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const ENV_NAME_PATTERN = '^[-._a-zA-Z][-._a-zA-Z0-9]*$';
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];

const celList = (values: readonly (string | number)[]): string =>
  `[${values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}]`;

function port(description: string, defaultValue: number): Schema {
  return integer(`${description} 1..65535. Default ${defaultValue}.`, { minimum: 1, maximum: 65535, default: defaultValue });
}

function seconds(description: string, defaultValue: number, minimum = 0): Schema {
  return integer(`${description} Default ${defaultValue}.`, { minimum, default: defaultValue });
}

function modelSchema(): Schema {
  const source = object(
    'Where the shards live. Set exactly one of persistentVolumeClaim, hostPath, image. The volume is mounted read-only in every rank pod.',
    {
      persistentVolumeClaim: object(
        'A PersistentVolumeClaim (in the BloomDeployment namespace) holding the converted shards; it must allow ReadOnlyMany or all ranks must land on one node.',
        { claimName: string('Name of the PersistentVolumeClaim.', { minLength: 1, maxLength: 253 }) },
        { required: ['claimName'] },
      ),
      hostPath: object(
        'A directory on every node that may run a rank (pre-staged shards, local NVMe). Mounted as hostPath type Directory.',
        {
          path: string('Absolute directory path on the node.', {
            minLength: 1,
            maxLength: 4096,
            'x-kubernetes-validations': [
              rule("self.startsWith('/')", 'spec.model.source.hostPath.path must be an absolute path', (self: string) =>
                self.startsWith('/'),
              ),
            ],
          }),
        },
        { required: ['path'] },
      ),
      image: object(
        'An OCI image (or artifact) holding the shards, mounted as an image volume (Kubernetes >= 1.33 with the ImageVolume feature).',
        {
          reference: string('Image reference, e.g. registry.example.com/models/bloom-176b-int8-tp8:v1.', {
            minLength: 1,
            maxLength: 1024,
          }),
          pullPolicy: string(`Pull policy of the model image: Always, IfNotPresent or Never. Default ${DEFAULTS.imageVolumePullPolicy}.`, {
            enum: PULL_POLICIES,
            default: DEFAULTS.imageVolumePullPolicy,
          }),
        },
        { required: ['reference'] },
      ),
    },
    {
      'x-kubernetes-validations': [
        rule(
          '[has(self.persistentVolumeClaim), has(self.hostPath), has(self.image)].filter(x, x).size() == 1',
          'spec.model.source must set exactly one of persistentVolumeClaim, hostPath, image',
          (self: ModelSource) => [self.persistentVolumeClaim, self.hostPath, self.image].filter((x) => x !== undefined).length === 1,
        ),
      ],
    },
  );
  return object(
    'The model every group serves: its shard format and where the shards live. BLOOM_MODEL_DIR = mountPath/path.',
    {
      format: string(
        `Shard format. bloom-int8: the project's format (one safetensors file per rank + manifest; convert Hugging Face or DeepSpeed-Inference INT8 checkpoints into it). Default ${DEFAULTS.model.format}.`,
        { enum: ['bloom-int8'], default: DEFAULTS.model.format },
      ),
      source,
      path: string('Directory inside the volume that holds the shard manifest, relative (no leading "/", no ".."). Default "" (the volume root).', {
        maxLength: 1024,
        default: DEFAULTS.model.path,
        'x-kubernetes-validations': [
          rule(
            "!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",
            'spec.model.path must be a relative path inside the volume without ".." segments',
            (self: string) => !self.startsWith('/') && !/(^|\/)\.\.(\/|$)/.test(self),
          ),
        ],
      }),
      mountPath: string(`Where the model volume is mounted in the worker container (absolute, not under /dev/shm). Default ${DEFAULTS.model.mountPath}.`, {
        minLength: 1,
        maxLength: 1024,
        default: DEFAULTS.model.mountPath,
        'x-kubernetes-validations': [
          rule(
            "self.startsWith('/') && self != '/' && self != '/dev/shm' && !self.startsWith('/dev/shm/')",
            'spec.model.mountPath must be an absolute path other than / and outside /dev/shm',
            (self: string) => self.startsWith('/') && self !== '/' && self !== '/dev/shm' && !self.startsWith('/dev/shm/'),
          ),
        ],
      }),
    },
    { required: ['source'] },
  );
}

function keyRef(what: string): Schema {
  return object(
    `Selects a key of a ${what} in the BloomDeployment namespace.`,
    {
      name: string(`Name of the ${what}.`, { minLength: 1, maxLength: 253 }),
      key: string(`Key inside the ${what}.`, { minLength: 1, maxLength: 253 }),
      optional: boolean(`Whether the ${what} or its key may be missing.`),
    },
    { required: ['name', 'key'] },
  );
}

function envSchema(): Schema {
  const valueFrom = object(
    'Source of the value: exactly one of secretKeyRef, configMapKeyRef, fieldRef.',
    {
      secretKeyRef: keyRef('Secret'),
      configMapKeyRef: keyRef('ConfigMap'),
      fieldRef: object(
        'A field of the pod, e.g. metadata.name or status.podIP.',
        {
          fieldPath: string('Path of the field.', { minLength: 1, maxLength: 256 }),
          apiVersion: string('Version of the schema the fieldPath is written in (default v1).', { maxLength: 64 }),
        },
        { required: ['fieldPath'] },
      ),
    },
    {
      'x-kubernetes-validations': [
        rule(
          '[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)].filter(x, x).size() == 1',
          'spec.worker.env[].valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef',
          (self: Record<string, unknown>) => ['secretKeyRef', 'configMapKeyRef', 'fieldRef'].filter((k) => self[k] !== undefined).length === 1,
        ),
      ],
    },
  );
  const item = object(
    'An environment variable of the worker container.',
    {
      name: string('Variable name.', { minLength: 1, maxLength: 256, pattern: ENV_NAME_PATTERN }),
      value: string('Literal value.', { maxLength: 32768 }),
      valueFrom,
    },
    {
      required: ['name'],
      'x-kubernetes-validations': [
        rule(
          '!(has(self.value) && has(self.valueFrom))',
          'spec.worker.env[] must not set both value and valueFrom',
          (self: WorkerEnvVar) => !(self.value !== undefined && self.valueFrom !== undefined),
        ),
      ],
    },
  );
  const reserved = celList(RESERVED_ENV_NAMES);
  const allowed = celList(USER_SETTABLE_BLOOM_ENV_NAMES);
  return array(
    `Extra environment variables of the worker container, appended after the operator's. The names the operator writes (${RESERVED_ENV_NAMES.join(', ')}) and any other ${RESERVED_ENV_PREFIX}* name (except ${USER_SETTABLE_BLOOM_ENV_NAMES.join(', ') || 'none'}) are reserved; put NCCL settings in spec.rendezvous.nccl.`,
    item,
    {
      maxItems: 128,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      'x-kubernetes-validations': [
        rule(
          `self.all(e, !(e.name in ${reserved}) && (!e.name.startsWith('${RESERVED_ENV_PREFIX}') || e.name in ${allowed}))`,
          `spec.worker.env must not set the reserved names ${RESERVED_ENV_NAMES.join(', ')} or other ${RESERVED_ENV_PREFIX}* names: the operator writes them`,
          (self: WorkerEnvVar[]) => self.every((e) => !isReservedEnvName(e.name)),
        ),
      ],
    },
  );
}

function qualifiedName(field: string, description: string, defaultValue: string): Schema {
  return string(description, {
    minLength: 1,
    maxLength: 317,
    default: defaultValue,
    'x-kubernetes-validations': [
      rule(
        `self.matches('${QUALIFIED_NAME_REGEX}')`,
        `${field} must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 alphanumerics, '-', '_' or '.' (e.g. ${defaultValue})`,
        (self: string) => new RegExp(QUALIFIED_NAME_REGEX).test(self),
      ),
    ],
  });
}

function resourcesSchema(): Schema {
  const list = (what: string): Schema =>
    stringMap(`${what} per pod, e.g. {"memory": "1600Gi", "cpu": "96"}.`, { maxProperties: 32 }, quantity('A resource quantity.', { maxLength: 64 }));
  return object(
    `Compute resources of the worker container of every pod (all its ranks together). limits[gpuResourceName] is spec.gpusPerPod; a different GPU count here is refused.`,
    { limits: list('Limits'), requests: list('Requests') },
  );
}

function workerSchema(): Schema {
  return object(
    'The container of every pod: its entrypoint (bloom-worker, or torchrun / the deepspeed launcher) starts one rank process per GPU. Any engine that follows the torchrun convention (NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT and their PET_* mirrors) can run here.',
    {
      image: string('Worker image, e.g. ghcr.io/bloom-operator/bloom-worker:v0.1.0.', { minLength: 1, maxLength: 1024 }),
      imagePullPolicy: string('Pull policy of the worker image: Always, IfNotPresent or Never (Kubernetes default when unset).', {
        enum: PULL_POLICIES,
      }),
      command: array('Overrides the image entrypoint.', string('Argument.'), { maxItems: 64 }),
      args: array('Overrides the image arguments.', string('Argument.'), { maxItems: 256 }),
      env: envSchema(),
      resources: resourcesSchema(),
      gpuResourceName: qualifiedName(
        'spec.worker.gpuResourceName',
        `Extended resource name of one GPU (nvidia.com/gpu, amd.com/gpu, ...). Default ${DEFAULTS.worker.gpuResourceName}.`,
        DEFAULTS.worker.gpuResourceName,
      ),
      shmSize: quantity(
        `Size limit of the pod's memory-backed /dev/shm, shared by its rank processes (NCCL's SHM transport, torch). Default ${DEFAULTS.worker.shmPerRankGi}Gi per rank of the pod (${DEFAULTS.worker.shmPerRankGi * DEFAULTS.maxGpusPerPod}Gi for an 8-GPU pod).`,
      ),
      httpPort: port("Global rank 0's HTTP API port (BLOOM_HTTP_PORT, on pod 0); the client Service targets it.", DEFAULTS.worker.httpPort),
      healthPort: port("Every pod's health (/healthz, /readyz) and /metrics port (BLOOM_HEALTH_PORT), aggregating its ranks.", DEFAULTS.worker.healthPort),
      serviceAccountName: string('ServiceAccount of the rank pods; unset: the namespace default, without a mounted token.', {
        maxLength: 253,
      }),
      terminationGracePeriodSeconds: seconds(
        'Seconds a pod (its launcher, which forwards SIGTERM to every rank) gets between SIGTERM and SIGKILL.',
        DEFAULTS.worker.terminationGracePeriodSeconds,
      ),
      podSecurityContext: podSecurityContextSchema(),
      securityContext: containerSecurityContextSchema(),
      runtimeClassName: string('RuntimeClass of the rank pods (e.g. nvidia, or a sandboxed runtime).', { maxLength: 253 }),
      imagePullSecrets: array(
        'Secrets (in the BloomDeployment namespace) to pull the worker and model images with.',
        object('A Secret of type kubernetes.io/dockerconfigjson.', { name: string('Name of the Secret.', { minLength: 1, maxLength: 253 }) }, { required: ['name'] }),
        { maxItems: 16 },
      ),
      podMetadata: podMetadataSchema(),
      apiKeySecretRef: apiKeySecretRefSchema(),
    },
    { required: ['image'] },
  );
}

function placementSchema(): Schema {
  const toleration = object('A taint the rank pods tolerate (same as the Pod field).', {
    key: string('Taint key; empty with operator Exists matches every taint.', { maxLength: 317 }),
    operator: string('Exists or Equal (default Equal).', { enum: ['Exists', 'Equal'] }),
    value: string('Taint value for operator Equal.', { maxLength: 63 }),
    effect: string('NoSchedule, PreferNoSchedule or NoExecute; empty matches all.', {
      enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'],
    }),
    tolerationSeconds: integer('For NoExecute: how long the pod stays bound after the taint appears.', { format: 'int64' }),
  });
  return object(
    'Where the ranks of a group run. The ranks of one group are packed into one topology domain (required pod affinity on topologyKey).',
    {
      topologyKey: qualifiedName(
        'spec.placement.topologyKey',
        `Node label whose value names the domain a whole group must fit in: kubernetes.io/hostname for one 8-GPU NVLink node (TP <= GPUs per node), a rack or NVLink-switch label for larger groups. Default ${DEFAULTS.placement.topologyKey}.`,
        DEFAULTS.placement.topologyKey,
      ),
      exclusive: boolean(
        `One group per topology domain: pods of other BloomDeployment groups in the namespace may not share the domain. Default ${DEFAULTS.placement.exclusive}.`,
        { default: DEFAULTS.placement.exclusive },
      ),
      nodeSelector: stringMap('Node labels every rank pod requires.', { maxProperties: 64 }),
      tolerations: array('Tolerations of every rank pod.', toleration, { maxItems: 64 }),
      priorityClassName: string('PriorityClass of the rank pods.', { maxLength: 253 }),
      schedulerName: string('Scheduler of the rank pods (default: the cluster default scheduler).', { maxLength: 253 }),
    },
  );
}

function rendezvousSchema(): Schema {
  return object('How the ranks of a group find each other (torch.distributed with NCCL).', {
    port: port('Port rank 0 listens on for the rendezvous (MASTER_PORT).', DEFAULTS.rendezvous.port),
    timeoutSeconds: seconds(
      'Seconds a rank waits for the master and the other ranks (BLOOM_RENDEZVOUS_TIMEOUT).',
      DEFAULTS.rendezvous.timeoutSeconds,
      1,
    ),
    nccl: stringMap(`NCCL settings passed to every rank as env, e.g. {"NCCL_DEBUG": "WARN"}; every key starts with ${NCCL_ENV_PREFIX}.`, {
      maxProperties: 64,
      'x-kubernetes-validations': [
        rule(
          `self.all(k, k.startsWith('${NCCL_ENV_PREFIX}'))`,
          `spec.rendezvous.nccl keys must start with ${NCCL_ENV_PREFIX}`,
          (self: Record<string, string>) => Object.keys(self).every((k) => k.startsWith(NCCL_ENV_PREFIX)),
        ),
      ],
    }),
    ephemeralPorts: defaultedSection(object(
      `The pods' ephemeral port range (the sysctl net.ipv4.ip_local_port_range, which the restricted Pod Security Standard allows): NCCL's bootstrap and socket transport, gloo, and the store's clients listen on or connect from ports the kernel picks from it, as none of them can be pinned, so the group's NetworkPolicy names this range. Default ${DEFAULTS.rendezvous.ephemeralPorts.min}-${DEFAULTS.rendezvous.ephemeralPorts.max}.`,
      {
        min: integer('First port of the range.', { minimum: 1024, maximum: 65535, default: DEFAULTS.rendezvous.ephemeralPorts.min }),
        max: integer('Last port of the range.', { minimum: 1024, maximum: 65535, default: DEFAULTS.rendezvous.ephemeralPorts.max }),
      },
      {
        'x-kubernetes-validations': [
          rule('self.min < self.max', 'spec.rendezvous.ephemeralPorts.min must be below spec.rendezvous.ephemeralPorts.max', (self: PortRange) => self.min < self.max),
        ],
      },
    )),
  });
}

function failurePolicySchema(): Schema {
  const d = DEFAULTS.failurePolicy;
  return object(
    'When a group is recreated and when the operator gives up. A failed, lost or unready rank recreates the whole group with a new epoch.',
    {
      maxGroupRestarts: seconds('Recreations of one group allowed within restartWindowSeconds before it is marked Failed (0: never recreate).', d.maxGroupRestarts),
      restartWindowSeconds: seconds('Sliding window, in seconds, in which maxGroupRestarts is counted.', d.restartWindowSeconds, 1),
      backoffSeconds: seconds('Delay before the first recreation; doubles with each restart in the window.', d.backoffSeconds),
      maxBackoffSeconds: seconds('Upper bound of the recreation delay.', d.maxBackoffSeconds),
      startupTimeoutSeconds: seconds(
        'Seconds a rank may take to load its shard and become healthy (startup probe budget); loading a 22 GB shard takes minutes.',
        d.startupTimeoutSeconds,
        1,
      ),
      readinessLossSeconds: seconds('Seconds a started rank may stay unready before its group is recreated.', d.readinessLossSeconds),
      nodeLostGraceSeconds: seconds('A rank whose node is NotReady or gone makes its group restart at once; its pod, stuck Terminating on the lost node, is force-removed after this many seconds.', d.nodeLostGraceSeconds),
      placementTimeoutSeconds: seconds('Seconds a group may stay partly scheduled (some ranks bound, others unschedulable next to them: the topology domain filled up) before it is recreated to be placed afresh.', d.placementTimeoutSeconds),
    },
    {
      'x-kubernetes-validations': [
        rule(
          'self.backoffSeconds <= self.maxBackoffSeconds',
          'spec.failurePolicy.backoffSeconds must not exceed spec.failurePolicy.maxBackoffSeconds',
          (self: { backoffSeconds: number; maxBackoffSeconds: number }) => self.backoffSeconds <= self.maxBackoffSeconds,
        ),
      ],
    },
  );
}

function rolloutSchema(): Schema {
  return object(
    'How a new pod revision replaces the groups, counted in groups.',
    {
      maxSurge: integer(`Extra groups that may exist above spec.replicas during a rollout. Default ${DEFAULTS.rollout.maxSurge}.`, {
        minimum: 0,
        default: DEFAULTS.rollout.maxSurge,
      }),
      maxUnavailable: integer(`Groups that may be unavailable during a rollout. Default ${DEFAULTS.rollout.maxUnavailable}.`, {
        minimum: 0,
        default: DEFAULTS.rollout.maxUnavailable,
      }),
      progressDeadlineSeconds: seconds(
        'Seconds a rollout or scale may make no progress (no group becoming Ready, no more groups at the current revision) before the deployment reports Progressing=False with reason ProgressDeadlineExceeded and Stalled=True; the operator keeps trying. Does not change the pod revision.',
        DEFAULTS.rollout.progressDeadlineSeconds,
        1,
      ),
    },
    {
      'x-kubernetes-validations': [
        rule(
          'self.maxSurge > 0 || self.maxUnavailable > 0',
          'spec.rollout.maxSurge and spec.rollout.maxUnavailable must not both be 0',
          (self: { maxSurge: number; maxUnavailable: number }) => self.maxSurge > 0 || self.maxUnavailable > 0,
        ),
      ],
    },
  );
}

/** CEL of the effective gpusPerPod: the field, or its derived default min(tensorParallelSize, maxGpusPerPod). */
const GPUS_PER_POD_CEL = `(has(self.gpusPerPod) ? self.gpusPerPod : (self.tensorParallelSize < ${DEFAULTS.maxGpusPerPod} ? self.tensorParallelSize : ${DEFAULTS.maxGpusPerPod}))`;

interface ShapeView {
  tensorParallelSize: number;
  gpusPerPod?: number;
  worker?: { gpuResourceName: string; resources?: { limits?: Record<string, Quantity>; requests?: Record<string, Quantity> } };
  placement: { topologyKey: string };
}
const effectiveGpusPerPod = (self: ShapeView) => self.gpusPerPod ?? Math.min(self.tensorParallelSize, DEFAULTS.maxGpusPerPod);

/** A GPU count in resources.limits / requests must equal the effective gpusPerPod. */
function gpuCountRule(list: 'limits' | 'requests'): CelRule {
  const map = `self.worker.resources.${list}`;
  const value = `${map}[self.worker.gpuResourceName]`;
  return rule(
    `!has(self.worker) || !has(self.worker.resources) || !has(${map}) || !(self.worker.gpuResourceName in ${map}) || string(${value}) == string(${GPUS_PER_POD_CEL})`,
    `spec.worker.resources.${list}[gpuResourceName] must be the integer spec.gpusPerPod (the operator requests gpusPerPod GPUs per pod; set spec.gpusPerPod instead)`,
    (self: ShapeView) => {
      const set = self.worker?.resources?.[list]?.[self.worker.gpuResourceName];
      return set === undefined || String(set) === String(effectiveGpusPerPod(self));
    },
    { fieldPath: `.worker.resources.${list}` },
  );
}

function gangSchema(): Schema {
  return object(
    'How a multi-pod group is admitted all-or-nothing and placed inside one domain of placement.topologyKey (a single-pod group needs none of this).',
    {
      policy: string(
        'SchedulingGates: the pods are created with the scheduling gate inference.bloom.dev/gang; the operator chooses a domain of placement.topologyKey with room for the whole group (every node and bound pod of the cluster) and lifts the gate from every pod, pinning them there; without node access, pod 0 first and the others once it is bound. ' +
        'Kueue: the pods form a Kueue pod group (kueue.x-k8s.io/pod-group-name, one per group incarnation) in queueName, admitted whole against the ClusterQueue quota and, with topology-aware scheduling, into one domain of placement.topologyKey; Kueue gates and places them, the operator never pins or ungates them. ' +
        `PodGroup: the kube-scheduler's gang scheduling (scheduling.k8s.io/v1beta1 PodGroup per group incarnation, minCount = pods per group, topology constraint placement.topologyKey; Kubernetes 1.37 with GenericWorkload and TopologyAwareWorkloadScheduling). Default ${DEFAULTS.gang.policy}.`,
        { enum: ['SchedulingGates', 'Kueue', 'PodGroup'], default: DEFAULTS.gang.policy },
      ),
      queueName: string('The Kueue LocalQueue (in the deployment namespace) the groups are queued in: label kueue.x-k8s.io/queue-name. Required with policy Kueue, refused otherwise.', {
        maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      }),
    },
    {
      'x-kubernetes-validations': [
        rule(
          "(self.policy == 'Kueue') == has(self.queueName)",
          'spec.gang.queueName is required with policy Kueue and only there',
          (self: { policy: string; queueName?: string }) => (self.policy === 'Kueue') === (self.queueName !== undefined),
          { fieldPath: '.queueName' },
        ),
      ],
    },
  );
}

/** Rules on the group shape: pods of gpusPerPod GPUs that tile the tensor-parallel group, on distinct nodes. */
function shapeRules(): CelRule[] {
  return [
    rule(
      '!has(self.gpusPerPod) || self.tensorParallelSize % self.gpusPerPod == 0',
      'spec.gpusPerPod must divide spec.tensorParallelSize (a group is tensorParallelSize / gpusPerPod pods of gpusPerPod GPUs each)',
      (self: ShapeView) => self.gpusPerPod === undefined || self.tensorParallelSize % self.gpusPerPod === 0,
      { fieldPath: '.gpusPerPod' },
    ),
    gpuCountRule('limits'),
    gpuCountRule('requests'),
    rule(
      `self.tensorParallelSize <= ${GPUS_PER_POD_CEL} || self.placement.topologyKey != '${HOSTNAME_LABEL}'`,
      `spec.placement.topologyKey must name a domain of several nodes (e.g. nvidia.com/gpu.clique) when a group is several pods: the pods of one group run on distinct nodes, so ${HOSTNAME_LABEL} cannot hold them`,
      (self: ShapeView) => self.tensorParallelSize <= effectiveGpusPerPod(self) || self.placement.topologyKey !== HOSTNAME_LABEL,
      { fieldPath: '.placement.topologyKey' },
    ),
  ];
}

export function specSchema(): Schema {
  const tp = celList(TENSOR_PARALLEL_SIZES);
  return object(
    'Desired state: how many tensor-parallel groups of which model, and how to run, place and heal them.',
    {
      replicas: integer(
        `Number of tensor-parallel groups (each serves the whole model). 0..${MAX_REPLICAS}. Default ${DEFAULTS.replicas}. Scale subresource: kubectl scale and HPA work.`,
        { minimum: 0, maximum: MAX_REPLICAS, default: DEFAULTS.replicas },
      ),
      tensorParallelSize: integer(
        `Ranks (one per GPU) per group; must equal the shard count of the model. One of ${TENSOR_PARALLEL_SIZES.join(', ')}. Default ${DEFAULTS.tensorParallelSize}.`,
        {
          default: DEFAULTS.tensorParallelSize,
          'x-kubernetes-validations': [
            rule(
              `self in ${tp}`,
              `spec.tensorParallelSize must be one of ${TENSOR_PARALLEL_SIZES.join(', ')}`,
              (self: number) => TENSOR_PARALLEL_SIZES.includes(self),
            ),
          ],
        },
      ),
      gpusPerPod: integer(
        `GPUs, and so rank processes, per pod (1..${MAX_GPUS_PER_POD}); must divide tensorParallelSize. A group is tensorParallelSize / gpusPerPod pods, each requesting gpusPerPod GPUs. The ranks of one node share one pod, so NCCL can use NVLink (CUDA IPC needs the peer GPUs visible in the same container); a group spans several pods only when it spans several nodes. Default min(tensorParallelSize, ${DEFAULTS.maxGpusPerPod}).`,
        { minimum: 1, maximum: MAX_GPUS_PER_POD },
      ),
      model: modelSchema(),
      worker: workerSchema(),
      placement: defaultedSection(placementSchema()),
      gang: defaultedSection(gangSchema()),
      rendezvous: defaultedSection(rendezvousSchema()),
      network: networkSchema(),
      failurePolicy: defaultedSection(failurePolicySchema()),
      rollout: defaultedSection(rolloutSchema()),
    },
    {
      required: ['model', 'worker'],
      'x-kubernetes-validations': [
        ...shapeRules(),
        rule(
          '!has(self.worker) || (self.worker.httpPort != self.worker.healthPort && self.rendezvous.port != self.worker.httpPort && self.rendezvous.port != self.worker.healthPort)',
          'spec.worker.httpPort, spec.worker.healthPort and spec.rendezvous.port must be three different ports',
          (self: { worker?: { httpPort: number; healthPort: number }; rendezvous: { port: number } }) =>
            self.worker === undefined ||
            (self.worker.httpPort !== self.worker.healthPort &&
            self.rendezvous.port !== self.worker.httpPort &&
            self.rendezvous.port !== self.worker.healthPort),
        ),
        rule(
          '[self.rendezvous.port, has(self.worker) ? self.worker.httpPort : 0, has(self.worker) ? self.worker.healthPort : 0].all(p, p < self.rendezvous.ephemeralPorts.min || p > self.rendezvous.ephemeralPorts.max)',
          'spec.rendezvous.port, spec.worker.httpPort and spec.worker.healthPort must lie outside spec.rendezvous.ephemeralPorts (the kernel hands those ports out)',
          (self: { worker?: { httpPort: number; healthPort: number }; rendezvous: { port: number; ephemeralPorts: PortRange } }) =>
            [self.rendezvous.port, self.worker?.httpPort ?? 0, self.worker?.healthPort ?? 0]
              .every((p) => p < self.rendezvous.ephemeralPorts.min || p > self.rendezvous.ephemeralPorts.max),
          { fieldPath: '.rendezvous.ephemeralPorts' },
        ),
      ],
    },
  );
}
