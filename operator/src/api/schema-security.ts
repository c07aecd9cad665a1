/**
 * OpenAPI schema of the security parts of BloomDeployment.spec: the rank pods' security contexts
 * (defaulted so that the pods pass the `restricted` Pod Security Standard), their extra metadata,
 * the API key, and spec.network (the NetworkPolicy of every group).
 */
import { COMMON_LABEL_KEYS, OPERATOR_KEY_PREFIX } from './constants.js';
import { DEFAULTS } from './defaults-table.js';
import { array, boolean, defaultedSection, int64, object, rule, string, stringMap, type Schema } from './schema-builder.js';
import type { NetworkPeer } from './types.js';

const RESERVED_LABEL_KEYS = Object.values(COMMON_LABEL_KEYS);

function id(what: string, defaultValue?: number): Schema {
  return int64(`${what}${defaultValue === undefined ? '' : ` Default ${defaultValue} (the worker image's).`}`, {
    minimum: 0,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

function seccompProfile(defaulted: boolean): Schema {
  return object('Seccomp profile (as in the Pod API).', {
    type: string(`RuntimeDefault, Localhost or Unconfined (restricted allows the first two).${defaulted ? ' Default RuntimeDefault.' : ''}`, {
      enum: ['RuntimeDefault', 'Localhost', 'Unconfined'],
      ...(defaulted ? { default: 'RuntimeDefault' } : {}),
    }),
    localhostProfile: string('Profile file (type Localhost), relative to the kubelet\'s seccomp directory.', { maxLength: 4096 }),
  }, { required: ['type'], ...(defaulted ? { default: { type: 'RuntimeDefault' } } : {}) });
}

const seLinuxOptions = object('SELinux context (as in the Pod API).', {
  user: string('SELinux user.', { maxLength: 253 }),
  role: string('SELinux role.', { maxLength: 253 }),
  type: string('SELinux type.', { maxLength: 253 }),
  level: string('SELinux level.', { maxLength: 253 }),
});

/** spec.worker.podSecurityContext: defaulted to a non-root numeric user and the runtime's seccomp profile. */
export function podSecurityContextSchema(): Schema {
  return defaultedSection(object(
    'securityContext of every rank pod (a subset of the Pod API\'s). The defaults pass the restricted Pod Security Standard; fields you set replace them one by one.',
    {
      runAsNonRoot: boolean('The kubelet refuses to start a container whose user is root. Default true.', { default: true }),
      runAsUser: id('UID of the pod\'s processes.', DEFAULTS.worker.uid),
      runAsGroup: id('Primary GID of the pod\'s processes.', DEFAULTS.worker.gid),
      fsGroup: id('Group that owns the pod\'s volumes (unset by default: a chown of a large model volume takes long).'),
      fsGroupChangePolicy: string('Always or OnRootMismatch.', { enum: ['Always', 'OnRootMismatch'] }),
      supplementalGroups: array('Extra GIDs of the pod\'s processes.', id('A GID.'), { maxItems: 32 }),
      seccompProfile: seccompProfile(true),
      seLinuxOptions,
    },
  ));
}

/** spec.worker.securityContext: defaulted to no privilege escalation, no capabilities, a read-only root filesystem. */
export function containerSecurityContextSchema(): Schema {
  return defaultedSection(object(
    'securityContext of the worker container (a subset of the Pod API\'s). The defaults pass the restricted Pod Security Standard; fields you set replace them one by one (capabilities.drop stays [ALL] unless you set it). The root filesystem is read-only: /tmp (TMPDIR, HOME, TRITON_CACHE_DIR) and /dev/shm are writable emptyDirs.',
    {
      allowPrivilegeEscalation: boolean('Default false.', { default: false }),
      privileged: boolean('Privileged container (refused by the baseline and restricted standards).'),
      readOnlyRootFilesystem: boolean('Default true.', { default: true }),
      capabilities: object('Linux capabilities. Default: drop ALL.', {
        add: array('Capabilities to add (restricted allows only NET_BIND_SERVICE).', string('A capability.', { maxLength: 64 }), { maxItems: 64 }),
        drop: array('Capabilities to drop. Default [ALL].', string('A capability.', { maxLength: 64 }), { maxItems: 64, default: ['ALL'] }),
      }, { default: { drop: ['ALL'] } }),
      runAsNonRoot: boolean('Overrides the pod\'s runAsNonRoot.'),
      runAsUser: id('Overrides the pod\'s runAsUser.'),
      runAsGroup: id('Overrides the pod\'s runAsGroup.'),
      seccompProfile: seccompProfile(false),
      seLinuxOptions,
    },
  ));
}

const labelSelector = (what: string): Schema => object(`${what} (a label selector; {} selects all).`, {
  matchLabels: stringMap('Labels the object must carry.', { maxProperties: 64 }),
  matchExpressions: array('Set-based requirements.', object('A requirement.', {
    key: string('Label key.', { minLength: 1, maxLength: 317 }),
    operator: string('In, NotIn, Exists or DoesNotExist.', { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
    values: array('Values (In, NotIn).', string('A value.', { maxLength: 63 }), { maxItems: 64 }),
  }, { required: ['key', 'operator'] }), { maxItems: 32 }),
});

/** A list of NetworkPolicy peers, defaulted to every pod of the deployment's namespace. */
function peers(description: string): Schema {
  const peer = object('A NetworkPolicy peer (as in the NetworkPolicy API): pods by podSelector (in this namespace, or in the namespaces of namespaceSelector), or an ipBlock.', {
    podSelector: labelSelector('Pods'),
    namespaceSelector: labelSelector('Namespaces'),
    ipBlock: object('A CIDR range.', {
      cidr: string('e.g. 10.0.0.0/8.', { minLength: 1, maxLength: 64 }),
      except: array('CIDRs inside cidr to leave out.', string('A CIDR.', { maxLength: 64 }), { maxItems: 32 }),
    }, { required: ['cidr'] }),
  }, {
    'x-kubernetes-validations': [
      rule(
        'has(self.ipBlock) != (has(self.podSelector) || has(self.namespaceSelector))',
        'a spec.network peer sets either ipBlock or podSelector/namespaceSelector',
        (self: NetworkPeer) => (self.ipBlock !== undefined) !== (self.podSelector !== undefined || self.namespaceSelector !== undefined),
      ),
    ],
  });
  return array(`${description} Default: every pod of the deployment's namespace ([{podSelector: {}}]).`, peer, { minItems: 1, maxItems: 32, default: [{ podSelector: {} }] });
}

export function networkSchema(): Schema {
  return defaultedSection(object(
    'Ingress of the rank pods. Isolated: one NetworkPolicy per group, which lets in the rendezvous port and the ephemeral port range (spec.rendezvous.ephemeralPorts: NCCL, gloo) only from the pods of the same group incarnation, the HTTP port only from httpFrom, the health port only from healthFrom. Enforced only by a CNI that implements NetworkPolicy.',
    {
      policy: string(`Isolated or None (no NetworkPolicy). Default ${DEFAULTS.network.policy}.`, { enum: ['Isolated', 'None'], default: DEFAULTS.network.policy }),
      httpFrom: peers('Who may reach global rank 0\'s HTTP API (spec.worker.httpPort).'),
      healthFrom: peers('Who may reach every pod\'s health and /metrics port (spec.worker.healthPort): the metrics scraper. The kubelet\'s probes come from the node, which NetworkPolicy implementations always let in.'),
    },
  ));
}

/** spec.worker.podMetadata: extra labels and annotations of the rank pods, never the operator's own keys. */
export function podMetadataSchema(): Schema {
  const reserved = `[${RESERVED_LABEL_KEYS.map((k) => `'${k}'`).join(', ')}]`;
  const ownKey = (k: string) => k.startsWith(OPERATOR_KEY_PREFIX) || RESERVED_LABEL_KEYS.includes(k as never);
  const map = (what: 'labels' | 'annotations', value: Schema): Schema => stringMap(
    `Extra ${what} of every rank pod (e.g. for a service mesh or a cost tracker). Keys under ${OPERATOR_KEY_PREFIX} and ${RESERVED_LABEL_KEYS.join(', ')} are the operator's and refused.`,
    {
      maxProperties: 64,
      'x-kubernetes-validations': [
        rule(
          `self.all(k, !k.startsWith('${OPERATOR_KEY_PREFIX}') && !(k in ${reserved}))`,
          `spec.worker.podMetadata.${what} must not set the operator's keys (${OPERATOR_KEY_PREFIX}*, ${RESERVED_LABEL_KEYS.join(', ')})`,
          (self: Record<string, string>) => Object.keys(self).every((k) => !ownKey(k)),
        ),
      ],
    },
    value,
  );
  return object('Extra metadata of the rank pods.', {
    labels: map('labels', string('A label value.', { maxLength: 63 })),
    annotations: map('annotations', string('An annotation value.', { maxLength: 65536 })),
  });
}

export function apiKeySecretRefSchema(): Schema {
  return object(
    'A Secret key holding the bearer key of global rank 0\'s HTTP API: the Secret is mounted read-only into pod 0 as a file (BLOOM_API_KEY_FILE), never passed as an env var; requests without Authorization: Bearer <key> get 401. Health endpoints stay unauthenticated.',
    {
      name: string('Name of the Secret (in the BloomDeployment namespace).', { minLength: 1, maxLength: 253 }),
      key: string('Key inside the Secret.', { minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
    },
    { required: ['name', 'key'] },
  );
}
