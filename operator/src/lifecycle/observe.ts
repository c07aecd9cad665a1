/** Pure reading of observed pods and nodes: what each pod tells about its group's health. */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { GANG_SCHEDULING_GATE } from '../groups/pod.js';
import { LABELS, labelInteger } from '../groups/labels.js';

export interface NodeView {
  ready: boolean;
  /** Since when the Ready condition has its current value (ms). */
  since: number;
  unschedulable: boolean;
  labels: Record<string, string>;
  allocatable: Record<string, string>;
}
/** Nodes by name; a name missing from the map is a node that is gone. */
export type NodeViews = ReadonlyMap<string, NodeView>;

export function nodeView(node: V1Node): NodeView {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return {
    ready: ready?.status === 'True',
    since: ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : 0,
    unschedulable: node.spec?.unschedulable === true,
    labels: node.metadata?.labels ?? {},
    allocatable: node.status?.allocatable ?? {},
  };
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

export function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Since when (ms) the pod has not been Ready, or undefined if it is Ready. */
export function notReadySince(pod: V1Pod): number | undefined {
  if (isReady(pod)) return undefined;
  const ready = (pod.status?.conditions ?? []).find((c) => c.type === 'Ready');
  return ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : 0;
}

/** Why a pod can no longer be part of its group, or undefined if it still can. */
export function podFault(pod: V1Pod, nodes: NodeViews | undefined): { reason: string; message: string } | undefined {
  const name = pod.metadata?.name ?? '';
  if (isTerminating(pod)) return { reason: 'RankDeleted', message: `pod ${name} is being deleted or was evicted` };
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const terminated = pod.status?.containerStatuses?.find((s) => s.state?.terminated)?.state?.terminated;
    const detail = terminated ? ` (exit code ${terminated.exitCode}${terminated.reason ? `, ${terminated.reason}` : ''})` : '';
    const reason = pod.status?.reason === 'Evicted' ? 'RankEvicted' : 'RankFailed';
    return { reason, message: `pod ${name} ${phase === 'Failed' ? 'failed' : 'exited'}${detail}` };
  }
  const restarted = pod.status?.containerStatuses?.find((s) => (s.restartCount ?? 0) > 0);
  if (restarted) {
    const last = restarted.lastState?.terminated;
    return { reason: 'RankRestarted', message: `container ${restarted.name} of pod ${name} restarted${last?.reason ? ` (${last.reason})` : ''}` };
  }
  const nodeName = pod.spec?.nodeName;
  if (nodes && nodeName) {
    const node = nodes.get(nodeName);
    if (!node) return { reason: 'NodeLost', message: `node ${nodeName} of pod ${name} is gone` };
    if (!node.ready) return { reason: 'NodeLost', message: `node ${nodeName} of pod ${name} is NotReady` };
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
