/** What a reconcile asks the controller to write: the only output of the pure planning functions. */
import type { V1Pod, V1PodDisruptionBudget, V1Service, V1ServicePort } from '@kubernetes/client-node';

export type Action =
  | { kind: 'createService'; service: V1Service }
  | { kind: 'deleteService'; name: string }
  /** Merge-patch a group Service's record annotations (and selector), guarded by its resourceVersion. */
  | { kind: 'patchRecord'; name: string; resourceVersion: string; annotations: Record<string, string | null>; selector?: Record<string, string> }
  /** Merge-patch a Service's selector and ports (the client Service after a port change). */
  | { kind: 'patchServiceSpec'; name: string; resourceVersion: string; selector: Record<string, string>; ports: V1ServicePort[] }
  | { kind: 'createPod'; pod: V1Pod }
  /** Remove the operator's gang gate, at `gateIndex` of the cached pod's schedulingGates (and no other gate). */
  | { kind: 'ungatePod'; name: string; uid: string; gateIndex: number }
  | { kind: 'deletePod'; name: string; uid: string; force: boolean }
  | { kind: 'createPdb'; pdb: V1PodDisruptionBudget }
  | { kind: 'deletePdb'; name: string };

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
