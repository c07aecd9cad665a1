/** Labels and annotations on the objects the operator owns, and the selectors built from them. */
import { API_GROUP } from '../api/constants.js';
import { groupServiceName } from './names.js';

export const LABELS = {
  deployment: `${API_GROUP}/deployment`,
  group: `${API_GROUP}/group`,
  rank: `${API_GROUP}/rank`,
  epoch: `${API_GROUP}/epoch`,
  revision: `${API_GROUP}/revision`,
  /** `<bd>-g<group>`: identifies a group across deployments (exclusive placement selects on it). */
  groupKey: `${API_GROUP}/group-key`,
  /** The topology domain (value of placement.topologyKey) the operator chose for this incarnation, if it chose one. */
  domain: `${API_GROUP}/domain`,
} as const;

export const ANNOTATIONS = {
  /** On the group Service: the epoch of the group's current incarnation. */
  epoch: `${API_GROUP}/epoch`,
  /** On rank pods: the tensor-parallel size of the group. */
  tensorParallelSize: `${API_GROUP}/tensor-parallel-size`,
} as const;

/** Standard app.kubernetes.io labels put on every owned object. */
export function commonLabels(bd: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'bloom-worker',
    'app.kubernetes.io/instance': bd,
    'app.kubernetes.io/managed-by': 'bloom-operator',
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

/** Selects the rank-0 pod of every group. */
export function leaderSelector(bd: string): Record<string, string> {
  return { [LABELS.deployment]: bd, [LABELS.rank]: '0' };
}

/** status.selector (scale subresource, HPA): `inference.bloom.dev/deployment=<bd>,inference.bloom.dev/rank=0`. */
export function leaderSelectorString(bd: string): string {
  return selectorString(leaderSelector(bd));
}

/** `k1=v1,k2=v2` form of an equality selector (the form of a labelSelector query parameter). */
export function selectorString(selector: Record<string, string>): string {
  return Object.entries(selector)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** Labels of one rank pod. */
export function rankPodLabels(bd: string, group: number, rank: number, epoch: number, revision: string): Record<string, string> {
  return {
    ...commonLabels(bd),
    [LABELS.deployment]: bd,
    [LABELS.group]: String(group),
    [LABELS.rank]: String(rank),
    [LABELS.epoch]: String(epoch),
    [LABELS.revision]: revision,
    [LABELS.groupKey]: groupServiceName(bd, group),
  };
}

/** Identity of a rank pod read back from its labels. */
export interface RankIdentity {
  deployment: string;
  group: number;
  rank: number;
  epoch: number;
  revision: string;
}

function labelInteger(value: string | undefined): number | undefined {
  return value !== undefined && /^(0|[1-9][0-9]*)$/.test(value) ? Number(value) : undefined;
}

/** The identity of a rank pod from its labels; undefined when a label is missing or malformed (not one of ours). */
export function rankIdentity(labels: Record<string, string> | undefined): RankIdentity | undefined {
  if (!labels) return undefined;
  const deployment = labels[LABELS.deployment];
  const group = labelInteger(labels[LABELS.group]);
  const rank = labelInteger(labels[LABELS.rank]);
  const epoch = labelInteger(labels[LABELS.epoch]);
  const revision = labels[LABELS.revision];
  if (!deployment || group === undefined || rank === undefined || epoch === undefined || revision === undefined) return undefined;
  return { deployment, group, rank, epoch, revision };
}
