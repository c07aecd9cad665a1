/**
 * Pod revision: a short stable hash of exactly the spec parts that shape the group's pods. Changing
 * replicas, rollout or failurePolicy does not roll the groups; changing the image does.
 */
import { createHash } from 'node:crypto';
import { specWithDefaults } from '../api/defaults.js';
import type { BloomDeploymentSpec, DeepPartial } from '../api/types.js';

/** Spec fields whose change requires new pods. */
export const POD_SHAPING_FIELDS = ['tensorParallelSize', 'gpusPerPod', 'model', 'worker', 'placement', 'rendezvous', 'gang'] as const;

/** JSON with object keys sorted at every level; undefined members dropped. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** 10 hex characters of sha256 over the canonical JSON of the defaulted pod-shaping spec fields. */
export function podRevision(spec: BloomDeploymentSpec | DeepPartial<BloomDeploymentSpec>): string {
  const defaulted = specWithDefaults(spec);
  const shaping: Record<string, unknown> = {};
  for (const field of POD_SHAPING_FIELDS) shaping[field] = defaulted[field];
  return createHash('sha256').update(canonicalJson(shaping)).digest('hex').slice(0, 10);
}
