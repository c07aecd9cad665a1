/**
 * Where a multi-pod group fits (gang policy SchedulingGates), pure: the free resources of every node
 * from a cluster-wide view (every bound pod of every workload, terminating ones included: they hold
 * their resources until gone), less the groups already placed whose pods are not all bound yet, and
 * the best-fit domain of placement.topologyKey holding distinct nodes that each fit one pod of the
 * group. The scheduler then places the group's pods inside that domain (lifecycle/group-plan.ts).
 * A domain that fills up meanwhile (a pod the scheduler places first) is a placement stall:
 * the group is recreated, never charged, and this view already counts what took the room.
 */
import type { V1Container, V1Pod, V1Taint, V1Toleration } from '@kubernetes/client-node';
import { LABELS } from '../groups/labels.js';
import type { NodeViews } from './observe.js';
import { parseQuantity } from './quantity.js';

export type Resources = Record<string, number>;

/** What a bound pod holds on its node. */
export interface NodeUsage {
  node: string;
  requests: Resources;
}

/** A group the operator placed in a domain (`key` = `value`) whose `pods` pods are not bound yet. */
export interface Reservation {
  incarnation: string;
  namespace: string;
  groupKey: string;
  exclusive: boolean;
  key: string;
  value: string;
  pods: number;
  requests: Resources;
}

/** The pods of one group incarnation to place: `pods` pods of `requests` on distinct nodes of one domain. */
export interface GroupDemand {
  incarnation: string;
  namespace: string;
  groupKey: string;
  exclusive: boolean;
  topologyKey: string;
  pods: number;
  requests: Resources;
  /** Resource that orders the domains (the GPUs): the fullest one that fits is chosen. */
  primary: string;
  nodeSelector: Record<string, string>;
  tolerations: readonly V1Toleration[];
}

export interface ClusterView {
  nodes: NodeViews;
  /** Every bound, not finished pod in the cluster. */
  usage: readonly NodeUsage[];
  /** The operator's group pods, every deployment: who occupies which domain, which are placed and not bound. */
  groupPods: readonly V1Pod[];
  /** Placements made by this process that the pod cache does not show yet. */
  reservations: readonly Reservation[];
}

export type Fit = { domain: string } | { waiting: string };

const incarnationOf = (pod: V1Pod) =>
  `${pod.metadata?.namespace ?? ''}/${pod.metadata?.labels?.[LABELS.groupKey] ?? ''}/${pod.metadata?.labels?.[LABELS.epoch] ?? ''}`;

/** The key of a group incarnation, as its pods' labels give it. */
export const incarnationKey = (namespace: string, groupKey: string, epoch: number) => `${namespace}/${groupKey}/${epoch}`;

function add(into: Resources, from: Resources, sign = 1): void {
  for (const [name, value] of Object.entries(from)) into[name] = (into[name] ?? 0) + sign * value;
}

/** Requests of one container: its requests, else its limits (an extended resource sets only limits). */
function containerRequests(c: V1Container): Resources {
  const merged = { ...c.resources?.limits, ...c.resources?.requests } as Record<string, string | number>;
  return Object.fromEntries(Object.entries(merged).map(([name, q]) => [name, parseQuantity(q)]).filter(([, v]) => Number.isFinite(v)));
}

/** What the scheduler charges a pod: the containers' sum or the largest init container, whichever is larger, plus overhead. */
export function podRequests(pod: V1Pod): Resources {
  const total: Resources = {};
  for (const c of pod.spec?.containers ?? []) add(total, containerRequests(c));
  for (const c of pod.spec?.initContainers ?? []) {
    for (const [name, value] of Object.entries(containerRequests(c))) total[name] = Math.max(total[name] ?? 0, value);
  }
  add(total, Object.fromEntries(Object.entries(pod.spec?.overhead ?? {}).map(([n, q]) => [n, parseQuantity(String(q))])));
  return total;
}

/** The domain the operator pinned a pod to: the node-affinity term it adds when it lifts the gate. */
export function pinnedDomain(pod: V1Pod): { key: string; value: string } | undefined {
  const expr = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchExpressions?.[0];
  return expr?.operator === 'In' && expr.values?.length === 1 ? { key: expr.key, value: expr.values[0]! } : undefined;
}

/** Whether a pod carries the exclusive-placement term (required anti-affinity against every other group). */
function isExclusive(pod: V1Pod): boolean {
  return (pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])
    .some((t) => (t.labelSelector?.matchExpressions ?? []).some((e) => e.key === LABELS.groupKey && e.operator === 'NotIn'));
}

/** Kubernetes' toleration match (k8s.io/api core/v1 Toleration.ToleratesTaint). */
export function tolerates(tolerations: readonly V1Toleration[], taint: V1Taint): boolean {
  return tolerations.some((t) => (!t.effect || t.effect === taint.effect)
    && (t.operator === 'Exists' ? !t.key || t.key === taint.key : t.key === taint.key && (t.value ?? '') === (taint.value ?? '')));
}

const fits = (free: Resources, requests: Resources) => Object.entries(requests).every(([name, value]) => value <= 0 || (free[name] ?? 0) >= value);

/** `count` distinct nodes among `nodes` that each fit `requests`, fullest first (by `primary`); undefined if there are not enough. */
function bestFitNodes(free: ReadonlyMap<string, Resources>, nodes: readonly string[], count: number, requests: Resources, primary: string): string[] | undefined {
  const fitting = nodes.filter((n) => fits(free.get(n)!, requests))
    .sort((a, b) => (free.get(a)![primary] ?? 0) - (free.get(b)![primary] ?? 0) || (a < b ? -1 : 1));
  return fitting.length >= count ? fitting.slice(0, count) : undefined;
}

interface Occupant { namespace: string; groupKey: string; exclusive: boolean }

const describe = (r: Resources) => Object.entries(r).filter(([, v]) => v > 0).map(([n, v]) => `${n}=${Number(v.toPrecision(6))}`).join(', ');

/**
 * The best-fit domain for `demand`, or why none fits. Nodes count only when Ready, schedulable,
 * tolerated (NoSchedule and NoExecute taints), matching placement.nodeSelector and labelled with
 * the topology key. With exclusive placement a domain holding another group of the namespace is
 * not offered, and no group is offered a domain that an exclusive group of its namespace holds.
 */
export function fitGroup(view: ClusterView, demand: GroupDemand): Fit {
  const free = new Map<string, Resources>();
  for (const [name, node] of view.nodes) {
    if (!node.ready) continue;
    free.set(name, Object.fromEntries(Object.entries(node.allocatable).map(([n, q]) => [n, parseQuantity(q)])));
  }
  for (const u of view.usage) {
    const left = free.get(u.node);
    if (left) add(left, u.requests, -1);
  }
  const occupants = new Map<string, Occupant[]>();
  const occupy = (node: string, o: Occupant) => {
    const domain = view.nodes.get(node)?.labels[demand.topologyKey];
    if (domain !== undefined) occupants.set(domain, [...(occupants.get(domain) ?? []), o]);
  };

  // Placed and not bound: pinned pods in the cache, grouped per incarnation, and this process's own placements the cache lags behind.
  const pending = new Map<string, Reservation>();
  const boundNodes = new Map<string, Set<string>>();
  const shown = new Set<string>();
  for (const pod of view.groupPods) {
    const incarnation = incarnationOf(pod);
    const occupant = { namespace: pod.metadata?.namespace ?? '', groupKey: pod.metadata?.labels?.[LABELS.groupKey] ?? '', exclusive: isExclusive(pod) };
    const pin = pinnedDomain(pod);
    if (pin || pod.spec?.nodeName) shown.add(incarnation);
    if (pod.metadata?.deletionTimestamp && !pod.spec?.nodeName) continue;
    if (pod.spec?.nodeName) {
      occupy(pod.spec.nodeName, occupant);
      boundNodes.set(incarnation, (boundNodes.get(incarnation) ?? new Set()).add(pod.spec.nodeName));
      continue;
    }
    if (!pin) continue;
    const entry = pending.get(incarnation) ?? { incarnation, ...occupant, ...pin, pods: 0, requests: podRequests(pod) };
    pending.set(incarnation, { ...entry, pods: entry.pods + 1 });
  }
  for (const r of view.reservations) if (!shown.has(r.incarnation)) pending.set(r.incarnation, r);
  const nodesIn = new Map<string, string[]>();
  const domainNodes = (key: string, value: string) => {
    const id = `${key}\0${value}`;
    let nodes = nodesIn.get(id);
    if (!nodes) nodesIn.set(id, nodes = [...free.keys()].filter((n) => view.nodes.get(n)!.labels[key] === value));
    return nodes;
  };
  for (const r of pending.values()) {
    if (r.incarnation === demand.incarnation) continue;
    const taken = boundNodes.get(r.incarnation) ?? new Set();
    const candidates = domainNodes(r.key, r.value).filter((n) => !taken.has(n));
    const nodes = bestFitNodes(free, candidates, r.pods, r.requests, demand.primary) ?? candidates.slice(0, r.pods);
    for (const node of nodes) {
      add(free.get(node)!, r.requests, -1);
      occupy(node, r);
    }
  }

  const domains = new Map<string, string[]>();
  for (const name of free.keys()) {
    const node = view.nodes.get(name)!;
    const domain = node.labels[demand.topologyKey];
    const eligible = domain !== undefined && !node.unschedulable
      && Object.entries(demand.nodeSelector).every(([k, v]) => node.labels[k] === v)
      && node.taints.every((t) => (t.effect !== 'NoSchedule' && t.effect !== 'NoExecute') || tolerates(demand.tolerations, t));
    if (eligible) domains.set(domain, [...(domains.get(domain) ?? []), name]);
  }
  const others = (domain: string) => (occupants.get(domain) ?? []).filter((o) => o.namespace === demand.namespace && o.groupKey !== demand.groupKey);
  const open = [...domains.keys()].filter((d) => !others(d).some((o) => o.exclusive || demand.exclusive));
  const total = (domain: string) => domains.get(domain)!.reduce((n, node) => n + Math.max(0, free.get(node)![demand.primary] ?? 0), 0);
  const fitting = open
    .filter((d) => bestFitNodes(free, domains.get(d)!, demand.pods, demand.requests, demand.primary) !== undefined)
    .sort((a, b) => total(a) - total(b) || (a < b ? -1 : 1));
  if (fitting.length > 0) return { domain: fitting[0]! };
  const closed = domains.size - open.length;
  return {
    waiting: `no ${demand.topologyKey} domain has ${demand.pods} schedulable nodes with ${describe(demand.requests)} free each`
      + ` (${domains.size} domain(s) with eligible nodes${closed > 0 ? `, ${closed} held by other groups under exclusive placement` : ''})`,
  };
}
