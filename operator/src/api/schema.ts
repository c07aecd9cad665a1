/** The OpenAPI schema of the whole BloomDeployment object: the single definition the CRD is generated from. */
import { MAX_NAME_LENGTH, DNS_LABEL_MAX, LONGEST_NAME_SUFFIX } from './constants.js';
import { object, rule, string, type Schema } from './schema-builder.js';
import { specSchema } from './schema-spec.js';
import { statusSchema } from './schema-status.js';

/** DNS-1035 label: what Service names and pod hostnames derived from the BloomDeployment name must be. */
export const DNS_1035_LABEL_REGEX = '^[a-z]([-a-z0-9]*[a-z0-9])?$';

/** Names ending like a group Service (`-g<digits>`) are refused. */
export const GROUP_SUFFIX_REGEX = '-g[0-9]+$';

export function bloomDeploymentSchema(): Schema {
  return object(
    'BloomDeployment serves a BLOOM-family model as tensor-parallel groups of GPU rank pods (one INT8 shard per rank).',
    {
      apiVersion: string('APIVersion of this object: inference.bloom.dev/v1alpha1.'),
      kind: string('Kind of this object: BloomDeployment.'),
      metadata: { type: 'object' },
      spec: specSchema(),
      status: statusSchema(),
    },
    {
      required: ['spec'],
      'x-kubernetes-validations': [
        rule(
          `self.metadata.name.size() <= ${MAX_NAME_LENGTH}`,
          `metadata.name must be at most ${MAX_NAME_LENGTH} characters: rank hostnames <name>-g<group>-r<rank> add up to ${LONGEST_NAME_SUFFIX} characters to it and must fit a ${DNS_LABEL_MAX}-character DNS label`,
          (self: { metadata: { name?: string } }) => (self.metadata.name ?? '').length <= MAX_NAME_LENGTH,
        ),
        rule(
          `self.metadata.name.matches('${DNS_1035_LABEL_REGEX}')`,
          'metadata.name must be a DNS-1035 label (lowercase letters, digits and "-", starting with a letter): it names Services and pod hostnames',
          (self: { metadata: { name?: string } }) => new RegExp(DNS_1035_LABEL_REGEX).test(self.metadata.name ?? ''),
        ),
        rule(
          `!self.metadata.name.matches('${GROUP_SUFFIX_REGEX}')`,
          'metadata.name must not end in -g<digits>: <name>-g<N> is the name of the group Services of a BloomDeployment and would collide with this one\'s client Service',
          (self: { metadata: { name?: string } }) => !new RegExp(GROUP_SUFFIX_REGEX).test(self.metadata.name ?? ''),
        ),
      ],
    },
  );
}
