/** What a reconcile asks the controller to write: the only output of the pure planning functions. */
import type { V1Pod, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import type { NetworkPolicy } from '../groups/network-policy.js';
import type { PodGroup } from '../groups/gang.js';

export type Write =
  /** Create an object the caches do not show; one that exists and is not controlled by this deployment is an error. */
  | { kind: 'createService'; service: V1Service }
  | { kind: 'deleteService'; name: string; uid: string }
  /** Server-side apply (field manager bloom-operator, forced) of a Service whose spec or labels drifted. */
  | { kind: 'applyService'; service: V1Service }
  /** Merge-patch a group Service's record annotations (and selector), guarded by its resourceVersion. */
  | { kind: 'patchRecord'; name: string; resourceVersion: string; annotations: Record<string, string | null>; selector?: Record<string, string> }
  | { kind: 'createPod'; pod: V1Pod }
  /**
   * Remove the operator's gang gate, at `gateIndex` of the cached pod's schedulingGates (and no other gate), in the same patch
   * pinning the pod to the topology domain `domain` (node affinity, which a gated pod may still gain) when the operator chose one.
   */
  | { kind: 'ungatePod'; name: string; uid: string; gateIndex: number; domain?: { key: string; value: string } }
  /** Delete this pod (this uid); `orphanOf` names the group Service whose absence from the cache is the reason, to confirm live first. */
  | { kind: 'deletePod'; name: string; uid: string; force: boolean; orphanOf?: string }
  /** Set the pod's group-ready condition (its readiness gate): True only while every pod of the group is ready. */
  | { kind: 'setGroupReady'; name: string; ready: boolean; message: string }
  /** Server-side apply (forced) of an incarnation's scheduling.k8s.io PodGroup (gang policy PodGroup), before its pods. */
  | { kind: 'applyPodGroup'; podGroup: PodGroup }
  /** Delete a PodGroup whose pods go (a 404 is success). */
  | { kind: 'deletePodGroup'; name: string }
  | { kind: 'createPdb'; pdb: V1PodDisruptionBudget }
  | { kind: 'applyPdb'; pdb: V1PodDisruptionBudget }
  | { kind: 'deletePdb'; name: string; uid: string }
  /** A group's NetworkPolicy: created with the group (before its pods), applied when it drifted (a new epoch), deleted with it. */
  | { kind: 'createNetworkPolicy'; policy: NetworkPolicy }
  | { kind: 'applyNetworkPolicy'; policy: NetworkPolicy }
  | { kind: 'deleteNetworkPolicy'; name: string; uid: string };

/**
 * A write and the unit it belongs to: "deployment" (the client Service), "group/N", or "budget/N".
 * Writes of one scope depend on each other (a group's Service before its pods); a failed write
 * stops only the rest of its own scope.
 */
export type Action = Write & { scope: string };

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** The scope whose writes the event reports: it is emitted only if they all landed. */
  scope?: string;
}

export const DEPLOYMENT_SCOPE = 'deployment';
export const groupScope = (index: number) => `group/${index}`;
export const budgetScope = (index: number) => `budget/${index}`;

/** Puts writes into a scope. */
export const inScope = (scope: string, writes: readonly Write[]): Action[] => writes.map((w) => ({ ...w, scope }));
