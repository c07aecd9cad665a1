/** Identity of the BloomDeployment API. Every other module takes these names from here. */
export const API_GROUP = 'inference.bloom.dev';
export const API_VERSION = 'v1alpha1';
/** `inference.bloom.dev/v1alpha1`: the apiVersion written into manifests and owner references. */
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;
export const KIND = 'BloomDeployment';
export const LIST_KIND = 'BloomDeploymentList';
export const PLURAL = 'bloomdeployments';
export const SINGULAR = 'bloomdeployment';
export const SHORT_NAMES: readonly string[] = ['bd'];
export const CATEGORIES: readonly string[] = ['bloom'];
/** metadata.name of the CustomResourceDefinition. */
export const CRD_NAME = `${PLURAL}.${API_GROUP}`;

/** Upper bound of spec.replicas (groups per BloomDeployment). Bounds the group index in derived names. */
export const MAX_REPLICAS = 1000;
/** Tensor-parallel sizes the operator accepts: powers of two dividing BLOOM's head counts (112 heads for 176B). */
export const TENSOR_PARALLEL_SIZES: readonly number[] = [1, 2, 4, 8, 16];
export const MAX_TENSOR_PARALLEL_SIZE = Math.max(...TENSOR_PARALLEL_SIZES);
/** Upper bound of spec.gpusPerPod (the largest GPU nodes have 16). */
export const MAX_GPUS_PER_POD = 16;
/** The node label of a single node: a topology domain that cannot hold the pods of a multi-pod group. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** DNS labels (hostnames, Service names) are at most 63 characters. */
export const DNS_LABEL_MAX = 63;
/**
 * The longest DNS label derived from a BloomDeployment name is the pod hostname
 * `<name>-g<group>-p<pod>`; with the largest group index and pod index (one GPU per pod) it adds this many characters.
 */
export const LONGEST_NAME_SUFFIX = `-g${MAX_REPLICAS - 1}-p${MAX_TENSOR_PARALLEL_SIZE - 1}`.length;
/** Longest metadata.name a BloomDeployment may have so that every derived hostname and Service name fits a DNS label. */
export const MAX_NAME_LENGTH = DNS_LABEL_MAX - LONGEST_NAME_SUFFIX;

/** Prefix of every label and annotation key the operator owns on the objects it creates. */
export const OPERATOR_KEY_PREFIX = `${API_GROUP}/`;
/** The standard app.kubernetes.io labels the operator puts on every owned object (values: bloom-worker, the deployment, bloom-operator). */
export const COMMON_LABEL_KEYS = { name: 'app.kubernetes.io/name', instance: 'app.kubernetes.io/instance', managedBy: 'app.kubernetes.io/managed-by' } as const;
