/**
 * How a multi-pod group is handed to a gang scheduler (spec.gang.policy), pure: the pod labels and
 * annotations of a Kueue pod group, the scheduling.k8s.io PodGroup of an incarnation and the pods'
 * reference to it. SchedulingGates needs none of this: the operator's own gate (pod.ts) does it.
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { API_GROUP } from '../api/constants.js';
import type { BloomDeployment, BloomDeploymentSpec } from '../api/types.js';
import { commonLabels, groupEpochSelector } from './labels.js';
import { incarnationName } from './names.js';
import { ownedMetadata } from './owner.js';
import { groupShape } from './shape.js';

/** Kueue's pod-group integration (sigs.k8s.io/kueue pkg/controller/jobs/pod/constants, v0.17). */
export const KUEUE = {
  queueLabel: 'kueue.x-k8s.io/queue-name',
  podGroupLabel: 'kueue.x-k8s.io/pod-group-name',
  totalCountAnnotation: 'kueue.x-k8s.io/pod-group-total-count',
  /**
   * "false": the pod group ends (its workload finishes, its quota is released, Kueue's finalizers go)
   * once all its pods are gone: an incarnation is never repaired in place, its successor is a new pod group.
   */
  retriableAnnotation: 'kueue.x-k8s.io/retriable-in-group',
  /** Pods of one role share one pod set; without it pod 0 (more ports) would be a pod set of its own. */
  roleHashAnnotation: 'kueue.x-k8s.io/role-hash',
  requiredTopologyAnnotation: 'kueue.x-k8s.io/podset-required-topology',
  /** The gate Kueue adds at admission and lifts once the group is admitted; never the operator's to remove. */
  admissionGate: 'kueue.x-k8s.io/admission',
} as const;

/** The one pod set of a group: every pod asks for the same GPUs. */
export const KUEUE_POD_SET = 'main';

export const POD_GROUP_API = { group: 'scheduling.k8s.io', version: 'v1beta1', plural: 'podgroups', kind: 'PodGroup' } as const;

/** A scheduling.k8s.io/v1beta1 PodGroup: the kube-scheduler places its minCount pods all at once, inside one domain of the topology key. */
export interface PodGroup extends KubernetesObject {
  spec: {
    schedulingPolicy: { gang: { minCount: number } };
    schedulingConstraints?: { topology: Array<{ key: string }> };
  };
}

const multiPod = (spec: BloomDeploymentSpec) => groupShape(spec).pods > 1;

/**
 * Names the PodGroup on the pods of policy PodGroup, where the operator reads it back (client-node's
 * typed LIST drops spec.schedulingGroup, a field its models lack).
 */
export const POD_GROUP_ANNOTATION = `${API_GROUP}/pod-group`;

/**
 * Labels and annotations a group pod carries for its gang policy: Kueue's pod group, or the name of
 * its PodGroup; empty for SchedulingGates and for single-pod groups.
 */
export function gangPodMetadata(bd: BloomDeployment, group: number, epoch: number): { labels: Record<string, string>; annotations: Record<string, string> } {
  const { spec } = bd;
  if (usesPodGroups(spec)) return { labels: {}, annotations: { [POD_GROUP_ANNOTATION]: incarnationName(bd.metadata.name ?? '', group, epoch) } };
  if (spec.gang.policy !== 'Kueue' || !multiPod(spec)) return { labels: {}, annotations: {} };
  return {
    labels: { [KUEUE.queueLabel]: spec.gang.queueName ?? '', [KUEUE.podGroupLabel]: incarnationName(bd.metadata.name ?? '', group, epoch) },
    annotations: {
      [KUEUE.totalCountAnnotation]: String(groupShape(spec).pods),
      [KUEUE.retriableAnnotation]: 'false',
      [KUEUE.roleHashAnnotation]: KUEUE_POD_SET,
      [KUEUE.requiredTopologyAnnotation]: spec.placement.topologyKey,
    },
  };
}

/**
 * The pod's reference to its incarnation's PodGroup (policy PodGroup, multi-pod groups): Pod
 * spec.schedulingGroup, a Kubernetes 1.35+ field that client-node's models lack (kube-writer.ts sends pods as they are).
 */
export function podSchedulingGroup(bd: BloomDeployment, group: number, epoch: number): { schedulingGroup?: { podGroupName: string } } {
  if (bd.spec.gang.policy !== 'PodGroup' || !multiPod(bd.spec)) return {};
  return { schedulingGroup: { podGroupName: incarnationName(bd.metadata.name ?? '', group, epoch) } };
}

/** Whether the deployment's groups get a PodGroup per incarnation. */
export const usesPodGroups = (spec: BloomDeploymentSpec) => spec.gang.policy === 'PodGroup' && multiPod(spec);

/** The PodGroup of one incarnation of a group, owned by the deployment. */
export function desiredPodGroup(bd: BloomDeployment, group: number, epoch: number): PodGroup {
  const name = bd.metadata.name ?? '';
  return {
    apiVersion: `${POD_GROUP_API.group}/${POD_GROUP_API.version}`,
    kind: POD_GROUP_API.kind,
    metadata: ownedMetadata(bd, incarnationName(name, group, epoch), { ...commonLabels(name), ...groupEpochSelector(name, group, epoch) }),
    spec: {
      schedulingPolicy: { gang: { minCount: groupShape(bd.spec).pods } },
      schedulingConstraints: { topology: [{ key: bd.spec.placement.topologyKey }] },
    },
  };
}

/** The PodGroups these pods belong to: they go with their pods. */
export function podGroupNames(pods: readonly V1Pod[]): string[] {
  const names = pods.map((p) => p.metadata?.annotations?.[POD_GROUP_ANNOTATION]);
  return [...new Set(names.filter((n): n is string => n !== undefined))];
}
