/** Pure reading of observed pods and nodes: what each pod tells about its group's health. */
import type { V1Node, V1Pod, V1Taint } from '@kubernetes/client-node';
import { GANG_SCHEDULING_GATE, GROUP_READY_CONDITION } from '../groups/pod.js';
import { LABELS, labelInteger } from '../groups/labels.js';

export interface NodeView {
  ready: boolean;
  /** Since when the Ready condition has its current value (ms). */
  since: number;
  unschedulable: boolean;
  /** Why the node is being drained by an autoscaler (its taint), if it is: the groups on it are replaced surge-first. */
  draining?: string;
  labels: Record<string, string>;
  allocatable: Record<string, string>;
  /** The taints that keep pods off the node (NoSchedule, NoExecute) unless tolerated. */
  taints: V1Taint[];
}
/** Nodes by name; a name missing from the map is a node that is gone. */
export type NodeViews = ReadonlyMap<string, NodeView>;

/**
 * Taints with which autoscalers announce that they are about to drain a node: Karpenter (v1, and the
 * v0.3x disruption taint) and the cluster-autoscaler. A plain cordon is not one: it may be maintenance
 * that never evicts, so it replaces nothing by itself.
 */
export const DRAIN_TAINTS: readonly string[] = ['karpenter.sh/disrupted', 'karpenter.sh/disruption', 'ToBeDeletedByClusterAutoscaler'];

/** Annotation the eviction webhook puts on a pod whose eviction was asked for (kubectl drain, the eviction API). */
export const DRAIN_REQUESTED_ANNOTATION = 'inference.bloom.dev/drain-requested';

export function nodeView(node: V1Node): NodeView {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const taint = (node.spec?.taints ?? []).find((t) => DRAIN_TAINTS.includes(t.key));
  return {
    ready: ready?.status === 'True',
    since: ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : 0,
    unschedulable: node.spec?.unschedulable === true,
    ...(taint ? { draining: `node ${node.metadata?.name} has the ${taint.key} taint` } : {}),
    labels: node.metadata?.labels ?? {},
    allocatable: node.status?.allocatable ?? {},
    taints: (node.spec?.taints ?? []).filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute')
      .map((t) => ({ key: t.key, effect: t.effect, ...(t.value ? { value: t.value } : {}) })),
  };
}

/** Why a pod is being drained (an eviction was asked for it, or its node is an autoscaler's), if it is. */
export function drainOf(pod: V1Pod, nodes: NodeViews | undefined): string | undefined {
  const asked = pod.metadata?.annotations?.[DRAIN_REQUESTED_ANNOTATION];
  if (asked) return `an eviction of pod ${pod.metadata?.name} was asked for at ${asked}`;
  return pod.spec?.nodeName ? nodes?.get(pod.spec.nodeName)?.draining : undefined;
}

// Each label is read on its own: a pod of an older operator (one rank per pod, no pod label) still
// belongs to its group and epoch, so the rollout that replaces its group deletes it.
const labelNumber = (pod: V1Pod, key: string) => labelInteger(pod.metadata?.labels?.[key]) ?? Number.NaN;
/** Group of a pod; NaN for a pod whose group label is not ours. */
export const podGroup = (pod: V1Pod) => labelNumber(pod, LABELS.group);
/** Index of a pod in its group (NODE_RANK). */
export const podIndex = (pod: V1Pod) => labelNumber(pod, LABELS.pod);
export const podEpoch = (pod: V1Pod) => labelNumber(pod, LABELS.epoch);
/** Position of the operator's own gang gate among the pod's scheduling gates (-1 when lifted); other controllers' gates stay. */
export const ownGateIndex = (pod: V1Pod) => (pod.spec?.schedulingGates ?? []).findIndex((g) => g.name === GANG_SCHEDULING_GATE);
export const isGated = (pod: V1Pod) => ownGateIndex(pod) >= 0;
export const isTerminating = (pod: V1Pod) => pod.metadata?.deletionTimestamp !== undefined && pod.metadata?.deletionTimestamp !== null;

/** The pod's readiness gates include the operator's group-ready condition. */
export const hasGroupGate = (pod: V1Pod) => (pod.spec?.readinessGates ?? []).some((g) => g.conditionType === GROUP_READY_CONDITION);

/**
 * Whether the pod's own containers are ready. For a gated pod that is ContainersReady (its Ready also
 * waits for the group-ready gate, which the operator derives from this); otherwise Ready.
 */
export function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === readinessCondition(pod) && c.status === 'True');
}

const readinessCondition = (pod: V1Pod) => (hasGroupGate(pod) ? 'ContainersReady' : 'Ready');

/** Since when (ms) the pod has not been ready (see isReady), or undefined if it is. */
export function notReadySince(pod: V1Pod): number | undefined {
  if (isReady(pod)) return undefined;
  const ready = (pod.status?.conditions ?? []).find((c) => c.type === readinessCondition(pod));
  return ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : 0;
}

/** The status of the group-ready condition on the pod ('True', 'False', or undefined when never set). */
export const groupReadyCondition = (pod: V1Pod) => (pod.status?.conditions ?? []).find((c) => c.type === GROUP_READY_CONDITION)?.status;

export interface PodFault { reason: string; message: string }

/** The reason of a pod's DisruptionTarget condition (set by the scheduler, the eviction API, the taint manager, the kubelet), if any. */
export function disruptionTarget(pod: V1Pod): string | undefined {
  const c = (pod.status?.conditions ?? []).find((x) => x.type === 'DisruptionTarget' && x.status === 'True');
  return c ? c.reason ?? 'DisruptionTarget' : undefined;
}

const DISRUPTION_REASONS: Readonly<Record<string, string>> = {
  PreemptionByScheduler: 'RankPreempted',
  EvictionByEvictionAPI: 'RankEvicted',
  TerminationByKubelet: 'RankEvicted',
  DeletionByTaintManager: 'NodeLost',
  DeletionByPodGC: 'NodeLost',
};

/**
 * Why a pod can no longer be part of its group, or undefined if it still can; `wakeAt` when a
 * node has been NotReady for less than the grace (a kubelet restart is not a lost node).
 */
export function podFault(pod: V1Pod, nodes: NodeViews | undefined, now: number, nodeLostGraceMs: number): { fault?: PodFault; wakeAt?: number } {
  const name = pod.metadata?.name ?? '';
  const target = disruptionTarget(pod);
  const disrupted = target === undefined ? undefined : DISRUPTION_REASONS[target] ?? 'RankEvicted';
  if (isTerminating(pod)) {
    return { fault: { reason: disrupted ?? 'RankDeleted', message: `pod ${name} is being deleted${target ? ` (${target})` : ''}` } };
  }
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const terminated = pod.status?.containerStatuses?.find((s) => s.state?.terminated)?.state?.terminated;
    const detail = terminated ? ` (exit code ${terminated.exitCode}${terminated.reason ? `, ${terminated.reason}` : ''})` : '';
    if (pod.status?.reason === 'Evicted' || disrupted) {
      return { fault: { reason: disrupted ?? 'RankEvicted', message: `pod ${name} was evicted${pod.status?.message ? `: ${pod.status.message}` : ''}` } };
    }
    return { fault: { reason: 'RankFailed', message: `pod ${name} ${phase === 'Failed' ? 'failed' : 'exited'}${detail}` } };
  }
  const restarted = pod.status?.containerStatuses?.find((s) => (s.restartCount ?? 0) > 0);
  if (restarted) {
    const last = restarted.lastState?.terminated;
    return { fault: { reason: 'RankRestarted', message: `container ${restarted.name} of pod ${name} restarted${last?.reason ? ` (${last.reason})` : ''}` } };
  }
  const nodeName = pod.spec?.nodeName;
  if (nodes && nodeName) {
    const node = nodes.get(nodeName);
    if (!node) return { fault: { reason: 'NodeLost', message: `node ${nodeName} of pod ${name} is gone` } };
    if (!node.ready) {
      const deadline = node.since + nodeLostGraceMs;
      if (now < deadline) return { wakeAt: deadline };
      return { fault: { reason: 'NodeLost', message: `node ${nodeName} of pod ${name} has been NotReady for ${Math.round((now - node.since) / 1000)}s` } };
    }
  }
  return {};
}

/** When every pod of the incarnation was bound (the last PodScheduled=True transition), if all are. */
export function scheduledAt(pods: readonly V1Pod[]): number | undefined {
  let latest = 0;
  for (const pod of pods) {
    if (!pod.spec?.nodeName) return undefined;
    const c = (pod.status?.conditions ?? []).find((x) => x.type === 'PodScheduled' && x.status === 'True');
    const at = c?.lastTransitionTime ?? pod.status?.startTime;
    if (!at) return undefined;
    latest = Math.max(latest, new Date(at).getTime());
  }
  return pods.length > 0 ? latest : undefined;
}

/** The scheduler's reason for not binding a pod (PodScheduled=False), e.g. "Unschedulable: 0/8 nodes are available: ...". */
export function schedulingProblem(pods: readonly V1Pod[]): string | undefined {
  for (const pod of pods) {
    if (pod.spec?.nodeName) continue;
    const c = (pod.status?.conditions ?? []).find((x) => x.type === 'PodScheduled' && x.status === 'False');
    if (c) return `pod ${pod.metadata?.name}: ${c.reason ?? 'NotScheduled'}${c.message ? `: ${c.message}` : ''}`;
  }
  return undefined;
}

/** Since when (ms) the scheduler has found no node for the pod, or undefined if it is bound or not yet tried. */
export function unschedulableSince(pod: V1Pod): number | undefined {
  if (pod.spec?.nodeName) return undefined;
  const scheduled = (pod.status?.conditions ?? []).find((c) => c.type === 'PodScheduled');
  if (scheduled?.status !== 'False' || scheduled.reason !== 'Unschedulable') return undefined;
  return scheduled.lastTransitionTime ? new Date(scheduled.lastTransitionTime).getTime() : 0;
}
