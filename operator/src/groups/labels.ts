/** Labels and annotations on the objects the operator owns, and the selectors built from them. */
import { API_GROUP, COMMON_LABEL_KEYS } from '../api/constants.js';
import { groupServiceName } from './names.js';

export const LABELS = {
  deployment: `${API_GROUP}/deployment`,
  group: `${API_GROUP}/group`,
  /** Index of the pod in its group (NODE_RANK); pod 0 holds global rank 0. */
  pod: `${API_GROUP}/pod`,
  epoch: `${API_GROUP}/epoch`,
  revision: `${API_GROUP}/revision`,
  /** `<bd>-g<group>`: identifies a group across deployments (exclusive placement selects on it). */
  groupKey: `${API_GROUP}/group-key`,
} as const;

export const ANNOTATIONS = {
  /** On the group Service: the epoch of the group's current incarnation. */
  epoch: `${API_GROUP}/epoch`,
  /** On group pods: the tensor-parallel size of the group. */
  tensorParallelSize: `${API_GROUP}/tensor-parallel-size`,
  /** On group pods: GPUs (rank processes) of the pod. */
  gpusPerPod: `${API_GROUP}/gpus-per-pod`,
} as const;

/** Standard app.kubernetes.io labels put on every owned object. */
export function commonLabels(bd: string): Record<string, string> {
  return {
    [COMMON_LABEL_KEYS.name]: 'bloom-worker',
    [COMMON_LABEL_KEYS.instance]: bd,
    [COMMON_LABEL_KEYS.managedBy]: 'bloom-operator',
  };
}

/** Selects every pod of a BloomDeployment. */
export function deploymentSelector(bd: string): Record<string, string> {
  return { [LABELS.deployment]: bd };
}

/** Selects every pod of one group, any epoch. */
export function groupSelector(bd: string, group: number): Record<string, string> {
  return { [LABELS.deployment]: bd, [LABELS.group]: String(group) };
}

/** Selects the pods of one incarnation of a group. */
export function groupEpochSelector(bd: string, group: number, epoch: number): Record<string, string> {
  return { ...groupSelector(bd, group), [LABELS.epoch]: String(epoch) };
}

/** Selects pod 0 (global rank 0, the API) of every group. */
export function leaderSelector(bd: string): Record<string, string> {
  return { [LABELS.deployment]: bd, [LABELS.pod]: '0' };
}

/** status.selector (scale subresource, HPA): `inference.bloom.dev/deployment=<bd>,inference.bloom.dev/pod=0`. */
export function leaderSelectorString(bd: string): string {
  return selectorString(leaderSelector(bd));
}

/** `k1=v1,k2=v2` form of an equality selector (the form of a labelSelector query parameter). */
export function selectorString(selector: Record<string, string>): string {
  return Object.entries(selector)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** Labels of one pod of a group. */
export function groupPodLabels(bd: string, group: number, pod: number, epoch: number, revision: string): Record<string, string> {
  return {
    ...commonLabels(bd),
    [LABELS.deployment]: bd,
    [LABELS.group]: String(group),
    [LABELS.pod]: String(pod),
    [LABELS.epoch]: String(epoch),
    [LABELS.revision]: revision,
    [LABELS.groupKey]: groupServiceName(bd, group),
  };
}

/** A label value that is a canonical non-negative integer, else undefined. */
export function labelInteger(value: string | undefined): number | undefined {
  return value !== undefined && /^(0|[1-9][0-9]*)$/.test(value) ? Number(value) : undefined;
}
