/**
 * Whether an owned object still matches what the operator applies. Only the fields the operator
 * sets are compared, the way server-side apply owns them: labels it sets, the Service selector
 * (an atomic map: an extra key is drift), its own ports (others' ports are theirs), the budget's
 * spec, the whole spec of a NetworkPolicy. A drifted object is repaired with one apply; an unchanged one costs no write.
 */
import type { V1PodDisruptionBudget, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { NetworkPolicy } from '../groups/network-policy.js';
import { canonicalJson } from '../groups/revision.js';

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const sameMap = (a: Record<string, string> | undefined, b: Record<string, string> | undefined) => {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b ?? {}).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a![k] === b![k]);
};
const hasLabels = (have: Record<string, string> | undefined, want: Record<string, string> | undefined) =>
  Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);
const samePort = (a: V1ServicePort, b: V1ServicePort) =>
  a.port === b.port && str(a.targetPort) === str(b.targetPort) && str(a.protocol || 'TCP') === str(b.protocol || 'TCP');

export function serviceDrifted(existing: V1Service, desired: V1Service): boolean {
  const have = existing.spec ?? {};
  const want = desired.spec ?? {};
  if (!hasLabels(existing.metadata?.labels, desired.metadata?.labels)) return true;
  if (!sameMap(have.selector, want.selector)) return true;
  if (want.type !== undefined && have.type !== want.type) return true;
  if (want.publishNotReadyAddresses !== undefined && have.publishNotReadyAddresses !== want.publishNotReadyAddresses) return true;
  return (want.ports ?? []).some((p) => !(have.ports ?? []).some((q) => q.name === p.name && samePort(q, p)));
}

export function budgetDrifted(existing: V1PodDisruptionBudget, desired: V1PodDisruptionBudget): boolean {
  const have = existing.spec ?? {};
  const want = desired.spec ?? {};
  return !hasLabels(existing.metadata?.labels, desired.metadata?.labels)
    || str(have.minAvailable) !== str(want.minAvailable)
    || !sameMap(have.selector?.matchLabels, want.selector?.matchLabels)
    || (have.selector?.matchExpressions ?? []).length > 0
    || str(have.unhealthyPodEvictionPolicy) !== str(want.unhealthyPodEvictionPolicy);
}

/** The operator owns a policy's whole spec (desired policies carry no empty members, as the API server omits them). */
export function networkPolicyDrifted(existing: NetworkPolicy, desired: NetworkPolicy): boolean {
  return !hasLabels(existing.metadata?.labels, desired.metadata?.labels) || canonicalJson(existing.spec ?? {}) !== canonicalJson(desired.spec ?? {});
}

/** The part of a desired object that server-side apply owns: no annotations (the group record is written by guarded patches). */
export function applyConfiguration<T extends V1Service | V1PodDisruptionBudget | NetworkPolicy>(desired: T): T {
  const { annotations: _annotations, ...metadata } = desired.metadata ?? {};
  return { ...desired, metadata };
}
