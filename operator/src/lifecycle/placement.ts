/**
 * Gang placement: before the ranks of a new incarnation exist, choose a topology
 * domain with room for all of them and pin them there. Left to itself the scheduler
 * places one rank at a time, so the first rank of a group can land in a domain with
 * one free GPU and pin the others (required pod affinity) where they cannot fit.
 * Free GPUs are counted from the nodes and the pods the operator watches (its own
 * rank pods): on a GPU pool shared with other workloads the estimate is optimistic,
 * and placement-stall detection remains the safety net.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeploymentSpec } from '../api/types.js';
import { LABELS } from '../groups/labels.js';
import { rankResources } from '../groups/resources.js';
import { isTerminating, type NodeViews } from './observe.js';

export interface DomainPicker {
  /** A domain with room for the whole group (best fit), reserved for it; undefined if none is known to fit. */
  pick(groupKey: string): string | undefined;
}

const gpuCount = (value: string | undefined) => (value === undefined ? 0 : Number.parseInt(value, 10) || 0);

/** GPUs one rank asks for. */
export function gpusPerRank(spec: BloomDeploymentSpec): number {
  return gpuCount(rankResources(spec.worker).limits?.[spec.worker.gpuResourceName]);
}

/**
 * A picker over the free GPUs per domain of placement.topologyKey, among Ready, schedulable
 * nodes that match placement.nodeSelector. With exclusive placement, domains holding ranks of
 * another group are not offered.
 */
export function domainPicker(spec: BloomDeploymentSpec, nodes: NodeViews | undefined, pods: readonly V1Pod[]): DomainPicker {
  if (!nodes) return { pick: () => undefined };
  const { topologyKey, nodeSelector, exclusive } = spec.placement;
  const gpu = spec.worker.gpuResourceName;
  const need = gpusPerRank(spec) * spec.tensorParallelSize;
  const domainOfNode = new Map<string, string>();
  const free = new Map<string, number>();
  const occupants = new Map<string, Set<string>>();
  /** Domains holding a rank of an exclusive group: their anti-affinity keeps every other group out. */
  const exclusiveOccupants = new Map<string, Set<string>>();
  for (const [name, node] of nodes) {
    const domain = node.labels[topologyKey];
    if (domain === undefined) continue;
    domainOfNode.set(name, domain);
    const eligible = node.ready && !node.unschedulable && Object.entries(nodeSelector ?? {}).every(([k, v]) => node.labels[k] === v);
    if (eligible) free.set(domain, (free.get(domain) ?? 0) + gpuCount(node.allocatable[gpu]));
  }
  for (const pod of pods) {
    if (isTerminating(pod) || pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') continue;
    const domain = pod.spec?.nodeName ? domainOfNode.get(pod.spec.nodeName) : pod.metadata?.labels?.[LABELS.domain];
    if (domain === undefined) continue;
    const used = (pod.spec?.containers ?? []).reduce((n, c) => n + gpuCount(String(c.resources?.limits?.[gpu] ?? c.resources?.requests?.[gpu] ?? '')), 0);
    if (free.has(domain)) free.set(domain, free.get(domain)! - used);
    const key = pod.metadata?.labels?.[LABELS.groupKey];
    if (!key) continue;
    occupants.set(domain, (occupants.get(domain) ?? new Set()).add(key));
    if (pod.spec?.affinity?.podAntiAffinity) exclusiveOccupants.set(domain, (exclusiveOccupants.get(domain) ?? new Set()).add(key));
  }
  const othersIn = (map: Map<string, Set<string>>, domain: string, groupKey: string) => [...(map.get(domain) ?? [])].some((k) => k !== groupKey);
  return {
    pick(groupKey: string) {
      const fits = [...free].filter(([domain, n]) => n >= need && !othersIn(exclusiveOccupants, domain, groupKey) && !(exclusive && othersIn(occupants, domain, groupKey)));
      fits.sort(([a, x], [b, y]) => x - y || (a < b ? -1 : 1));
      const chosen = fits[0]?.[0];
      if (chosen === undefined) return undefined;
      free.set(chosen, free.get(chosen)! - need);
      occupants.set(chosen, (occupants.get(chosen) ?? new Set()).add(groupKey));
      return chosen;
    },
  };
}
