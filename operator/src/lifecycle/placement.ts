/**
 * Gang placement of a multi-pod group: before the pods of a new incarnation exist, choose a
 * topology domain holding distinct nodes that each fit one pod (gpusPerPod free GPUs) for all of
 * them, and pin them there. Left to itself the scheduler places one pod at a time, so the first pod
 * can land in a domain without room for the others and pin them (required pod affinity) where they
 * cannot fit. A single-pod group needs none of this: the scheduler fits one pod on one node.
 * Free GPUs are counted per node from the nodes and the pods the operator watches (its own pods,
 * terminating ones included: they hold their GPUs until gone); on a GPU pool shared with other
 * workloads the estimate is optimistic, and placement-stall detection remains the safety net.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeploymentSpec } from '../api/types.js';
import { LABELS } from '../groups/labels.js';
import { groupShape } from '../groups/shape.js';
import type { NodeViews } from './observe.js';

export interface DomainPicker {
  /** A domain with room for the whole group (best fit), reserved for it; undefined if none is known to fit. */
  pick(groupKey: string): string | undefined;
}

const gpuCount = (value: string | undefined) => (value === undefined ? 0 : Number.parseInt(value, 10) || 0);

function podGpus(pod: V1Pod, gpu: string): number {
  return (pod.spec?.containers ?? []).reduce((n, c) => n + gpuCount(String(c.resources?.limits?.[gpu] ?? c.resources?.requests?.[gpu] ?? '')), 0);
}

/** Whether a pod carries the exclusive-placement term (anti-affinity against every other group). */
function isExclusive(pod: V1Pod): boolean {
  return (pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])
    .some((t) => (t.labelSelector?.matchExpressions ?? []).some((e) => e.key === LABELS.groupKey && e.operator === 'NotIn'));
}

/** The nodes (fewest free GPUs first) that take `count` pods of `need` GPUs, one pod per node; undefined if they do not fit. */
function bestFitNodes(free: ReadonlyMap<string, number>, nodes: readonly string[], count: number, need: number): string[] | undefined {
  const fitting = nodes.filter((n) => free.get(n)! >= need).sort((a, b) => free.get(a)! - free.get(b)! || (a < b ? -1 : 1));
  return fitting.length >= count ? fitting.slice(0, count) : undefined;
}

/**
 * A picker over the free GPUs per node, grouped by the domain of placement.topologyKey, among
 * Ready, schedulable nodes that match placement.nodeSelector. With exclusive placement, domains
 * holding pods of another group are not offered.
 */
export function domainPicker(spec: BloomDeploymentSpec, nodes: NodeViews | undefined, pods: readonly V1Pod[]): DomainPicker {
  const shape = groupShape(spec);
  if (!nodes || shape.pods === 1) return { pick: () => undefined };
  const { topologyKey, nodeSelector, exclusive } = spec.placement;
  const gpu = spec.worker.gpuResourceName;
  const domainOfNode = new Map<string, string>();
  const nodesOfDomain = new Map<string, string[]>();
  const free = new Map<string, number>();
  const occupants = new Map<string, Set<string>>();
  /** Domains holding a pod of an exclusive group: their anti-affinity keeps every other group out. */
  const exclusiveOccupants = new Map<string, Set<string>>();
  for (const [name, node] of nodes) {
    const domain = node.labels[topologyKey];
    if (domain === undefined) continue;
    domainOfNode.set(name, domain);
    const eligible = node.ready && !node.unschedulable && Object.entries(nodeSelector ?? {}).every(([k, v]) => node.labels[k] === v);
    if (!eligible) continue;
    free.set(name, gpuCount(node.allocatable[gpu]));
    nodesOfDomain.set(domain, [...(nodesOfDomain.get(domain) ?? []), name]);
  }
  /** Pods pinned to a domain and not bound yet, per incarnation: they will take distinct nodes there. */
  const pinnedPending = new Map<string, { domain: string; need: number; count: number }>();
  for (const pod of pods) {
    if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') continue;
    const nodeName = pod.spec?.nodeName;
    const domain = nodeName ? domainOfNode.get(nodeName) : pod.metadata?.labels?.[LABELS.domain];
    if (domain === undefined) continue;
    const used = podGpus(pod, gpu);
    if (nodeName && free.has(nodeName)) free.set(nodeName, free.get(nodeName)! - used);
    else if (!nodeName) {
      const incarnation = `${pod.metadata?.labels?.[LABELS.groupKey]}/${pod.metadata?.labels?.[LABELS.epoch]}`;
      const entry = pinnedPending.get(incarnation) ?? { domain, need: used, count: 0 };
      pinnedPending.set(incarnation, { ...entry, count: entry.count + 1 });
    }
    const key = pod.metadata?.labels?.[LABELS.groupKey];
    if (!key) continue;
    occupants.set(domain, (occupants.get(domain) ?? new Set()).add(key));
    if (isExclusive(pod)) {
      exclusiveOccupants.set(domain, (exclusiveOccupants.get(domain) ?? new Set()).add(key));
    }
  }
  // Pods pinned to a domain but not bound yet will take distinct nodes there: charge them where they fit best.
  for (const { domain, need, count } of pinnedPending.values()) {
    for (const node of bestFitNodes(free, nodesOfDomain.get(domain) ?? [], count, need) ?? []) free.set(node, free.get(node)! - need);
  }
  const othersIn = (map: Map<string, Set<string>>, domain: string, groupKey: string) => [...(map.get(domain) ?? [])].some((k) => k !== groupKey);
  const domainFree = (domain: string) => (nodesOfDomain.get(domain) ?? []).reduce((n, node) => n + Math.max(0, free.get(node)!), 0);
  return {
    pick(groupKey: string) {
      const fits = [...nodesOfDomain.keys()]
        .filter((domain) => !othersIn(exclusiveOccupants, domain, groupKey) && !(exclusive && othersIn(occupants, domain, groupKey)))
        .map((domain) => ({ domain, nodes: bestFitNodes(free, nodesOfDomain.get(domain)!, shape.pods, shape.gpusPerPod), total: domainFree(domain) }))
        .filter((f): f is { domain: string; nodes: string[]; total: number } => f.nodes !== undefined)
        .sort((a, b) => a.total - b.total || (a.domain < b.domain ? -1 : 1));
      const chosen = fits[0];
      if (chosen === undefined) return undefined;
      for (const node of chosen.nodes) free.set(node, free.get(node)! - shape.gpusPerPod);
      occupants.set(chosen.domain, (occupants.get(chosen.domain) ?? new Set()).add(groupKey));
      return chosen.domain;
    },
  };
}
