/** What a reconcile asks the controller to write: the only output of the pure planning functions. */
import type { V1Pod, V1Service } from '@kubernetes/client-node';

export type Action =
  | { kind: 'createService'; service: V1Service }
  | { kind: 'deleteService'; name: string }
  /** Merge-patch a group Service's record annotations (and selector), guarded by its resourceVersion. */
  | { kind: 'patchRecord'; name: string; resourceVersion: string; annotations: Record<string, string | null>; selector?: Record<string, string> }
  | { kind: 'replaceService'; service: V1Service; resourceVersion: string }
  | { kind: 'createPod'; pod: V1Pod }
  | { kind: 'ungatePod'; name: string }
  | { kind: 'deletePod'; name: string; uid: string; force: boolean };

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
