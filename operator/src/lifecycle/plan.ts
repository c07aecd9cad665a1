/**
 * planDeployment: the whole decision of one reconcile, pure. Given a (defaulted)
 * BloomDeployment and what the caches hold (its Services, its pods, the nodes),
 * return the writes to make, the events to emit, the status to report and when
 * to look again. The controller only executes what this returns.
 */
import type { V1Pod, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { API_GROUP } from '../api/constants.js';
import type { BloomDeployment, BloomDeploymentStatus, GroupStatus } from '../api/types.js';
import { desiredClientService, desiredGroupService } from '../groups/service.js';
import { desiredPodGroup, podGroupNames, usesPodGroups } from '../groups/gang.js';
import { desiredGroupPods } from '../groups/pod.js';
import { desiredGroupPdb } from '../groups/pdb.js';
import { desiredGroupNetworkPolicy, type NetworkPolicy } from '../groups/network-policy.js';
import { LABELS } from '../groups/labels.js';
import { clientServiceName, groupServiceName, masterAddress } from '../groups/names.js';
import { podRevision } from '../groups/revision.js';
import { groupShape } from '../groups/shape.js';
import { budgetScope, DEPLOYMENT_SCOPE, groupScope, inScope, type Action, type EventSpec, type Write } from './actions.js';
import { applyConfiguration, budgetDrifted, networkPolicyDrifted, serviceDrifted } from './drift.js';
import { readRecord, recordAnnotations, type GroupRecord } from './group-record.js';
import { planGroup, type GroupPlan } from './group-plan.js';
import { isTerminating, podGroup, type NodeViews } from './observe.js';
import type { Placer } from './placement.js';
import { planRollout } from './rollout.js';
import { computeStatus, progressDeadlineAt, progressDeadlineEvent } from './status.js';

/** Changing this annotation's value on a BloomDeployment resets every group's restart budget (and revives Failed groups). */
export const RESET_RESTARTS_ANNOTATION = `${API_GROUP}/reset-restarts`;

export interface DeploymentObservation {
  bd: BloomDeployment;
  services: readonly V1Service[];
  pods: readonly V1Pod[];
  /** The deployment's PodDisruptionBudgets; undefined when the operator may not manage them. */
  pdbs: readonly V1PodDisruptionBudget[] | undefined;
  /** The deployment's NetworkPolicies (one per group). */
  networkPolicies: readonly NetworkPolicy[];
  nodes: NodeViews | undefined;
  now: number;
  clusterDomain: string;
  /** Places gated multi-pod groups (SchedulingGates) from the cluster-wide view; absent without node access. */
  place?: Placer;
}

export interface DeploymentPlan {
  actions: Action[];
  events: EventSpec[];
  status: BloomDeploymentStatus;
  wakeAt?: number;
}

/** Create the client Service, or repair it in one apply when its selector, ports or labels drifted. */
function clientServiceWrites(bd: BloomDeployment, existing: V1Service | undefined): Write[] {
  const desired = desiredClientService(bd);
  if (!existing) return [{ kind: 'createService', service: desired }];
  return serviceDrifted(existing, desired) ? [{ kind: 'applyService', service: applyConfiguration(desired) }] : [];
}

/** A group Service whose spec drifted (a hand edit) is applied back; its record stays with the guarded patches. */
function groupServiceWrites(bd: BloomDeployment, existing: V1Service, record: GroupRecord): Write[] {
  const desired = desiredGroupService(bd, record.index, record.epoch);
  return serviceDrifted(existing, desired) ? [{ kind: 'applyService', service: applyConfiguration(desired) }] : [];
}

function budgetWrites(bd: BloomDeployment, index: number, existing: V1PodDisruptionBudget | undefined): Write[] {
  const desired = desiredGroupPdb(bd, index);
  if (!existing) return [{ kind: 'createPdb', pdb: desired }];
  return budgetDrifted(existing, desired) ? [{ kind: 'applyPdb', pdb: applyConfiguration(desired) }] : [];
}

/** The group's NetworkPolicy at `epoch`: created, applied on drift (a new epoch), or deleted when spec.network.policy is None. */
function networkPolicyWrites(bd: BloomDeployment, index: number, epoch: number, existing: NetworkPolicy | undefined): Write[] {
  if (bd.spec.network.policy === 'None') return existing ? [deleteNetworkPolicy(existing)] : [];
  const desired = desiredGroupNetworkPolicy(bd, index, epoch);
  if (!existing) return [{ kind: 'createNetworkPolicy', policy: desired }];
  return networkPolicyDrifted(existing, desired) ? [{ kind: 'applyNetworkPolicy', policy: applyConfiguration(desired) }] : [];
}

const deleteNetworkPolicy = (p: NetworkPolicy): Write => ({ kind: 'deleteNetworkPolicy', name: p.metadata?.name ?? '', uid: p.metadata?.uid ?? '' });

function newGroup(bd: BloomDeployment, index: number, revision: string, now: number, clusterDomain: string, policy: NetworkPolicy | undefined): { writes: Write[]; status: GroupStatus } {
  const record: GroupRecord = { index, epoch: 1, revision, epochStarted: now, restarts: 0, restartTimes: [], disruptions: 0, disruptionTimes: [] };
  const service = desiredGroupService(bd, index, record.epoch);
  const annotations = Object.fromEntries(Object.entries(recordAnnotations(record)).filter((e): e is [string, string] => e[1] !== null));
  service.metadata!.annotations = { ...service.metadata!.annotations, ...annotations };
  const pods = desiredGroupPods({ bd, group: index, epoch: record.epoch, revision, clusterDomain })
    .map((pod): Write => ({ kind: 'createPod', pod }));
  const podGroup: Write[] = usesPodGroups(bd.spec) ? [{ kind: 'applyPodGroup', podGroup: desiredPodGroup(bd, index, record.epoch) }] : [];
  const name = bd.metadata.name ?? '';
  const leaderAddress = masterAddress(name, index, bd.metadata.namespace ?? 'default', clusterDomain, groupShape(bd.spec).pods);
  return {
    writes: [{ kind: 'createService', service }, ...networkPolicyWrites(bd, index, record.epoch, policy), ...podGroup, ...pods],
    status: { index, phase: 'Pending', epoch: 1, revision, readyPods: 0, readyRanks: 0, restarts: 0, leaderAddress },
  };
}

/** Deletes the pods not terminating yet, and the PodGroups they belong to. */
function deleteAll(pods: readonly V1Pod[], orphanOf?: string): Write[] {
  const live = pods.filter((p) => !isTerminating(p));
  return [
    ...live.map((p): Write => ({
      kind: 'deletePod', name: p.metadata?.name ?? '', uid: p.metadata?.uid ?? '', force: false, ...(orphanOf === undefined ? {} : { orphanOf }),
    })),
    ...podGroupNames(live).map((name): Write => ({ kind: 'deletePodGroup', name })),
  ];
}

export function planDeployment(obs: DeploymentObservation): DeploymentPlan {
  const { bd, now, clusterDomain } = obs;
  const groupName = (index: number) => groupServiceName(bd.metadata.name ?? '', index);
  const revision = podRevision(bd.spec);
  const resetToken = bd.metadata.annotations?.[RESET_RESTARTS_ANNOTATION];
  const clientService = obs.services.find((s) => s.metadata?.name === clientServiceName(bd.metadata.name ?? ''));
  const actions: Action[] = inScope(DEPLOYMENT_SCOPE, clientServiceWrites(bd, clientService));
  const events: EventSpec[] = [];

  const podsByGroup = new Map<number, V1Pod[]>();
  for (const pod of obs.pods) {
    const g = podGroup(pod);
    if (!Number.isInteger(g)) continue;
    podsByGroup.set(g, [...(podsByGroup.get(g) ?? []), pod]);
  }
  const groupServices = obs.services.filter((s) => s.metadata?.labels?.[LABELS.group] !== undefined);
  const plans = new Map<number, GroupPlan>();
  const groupServiceByIndex = new Map<number, V1Service>();
  for (const service of groupServices) {
    const record = readRecord(service);
    if (!record) continue;
    groupServiceByIndex.set(record.index, service);
    plans.set(record.index, planGroup({
      bd, record, serviceResourceVersion: service.metadata?.resourceVersion ?? '', pods: podsByGroup.get(record.index) ?? [],
      nodes: obs.nodes, now, revision, resetToken, clusterDomain, ...(obs.place ? { place: obs.place } : {}),
    }));
  }

  // Pods of a group whose Service is gone belong to a removed group: they go (once a live read confirms
  // the Service is gone, the cache may just lag), and their index waits.
  const busyIndices = new Set<number>();
  for (const [index, pods] of podsByGroup) {
    if (plans.has(index)) continue;
    busyIndices.add(index);
    actions.push(...inScope(groupScope(index), deleteAll(pods, groupName(index))));
  }

  const rollout = planRollout({
    groups: [...plans.values()].map((p) => ({ index: p.status.index, ready: p.ready, upToDate: p.upToDate })),
    replicas: bd.spec.replicas,
    maxSurge: bd.spec.rollout.maxSurge,
    maxUnavailable: bd.spec.rollout.maxUnavailable,
    busyIndices,
  });

  const pdbByName = obs.pdbs ? new Map(obs.pdbs.map((p) => [p.metadata?.name ?? '', p])) : undefined;
  const policyByName = new Map(obs.networkPolicies.map((p) => [p.metadata?.name ?? '', p]));
  const statuses: GroupStatus[] = [];
  const upToDate = new Set<number>();
  let wakeAt: number | undefined;
  for (const [index, plan] of plans) {
    const scope = groupScope(index);
    const pdb = pdbByName?.get(groupName(index));
    if (rollout.remove.includes(index)) {
      const pods = podsByGroup.get(index) ?? [];
      const service = groupServiceByIndex.get(index);
      actions.push(...inScope(scope, [{ kind: 'deleteService', name: groupName(index), uid: service?.metadata?.uid ?? '' }, ...deleteAll(pods)]));
      if (pdb) actions.push(...inScope(budgetScope(index), [{ kind: 'deletePdb', name: groupName(index), uid: pdb.metadata?.uid ?? '' }]));
      const why = plan.upToDate ? 'scale down' : plan.status.revision !== revision ? `outdated revision ${plan.status.revision}` : plan.status.message ?? 'replaced';
      events.push({ type: 'Normal', reason: 'GroupRemoved', message: `removing group ${index} (${why})`, scope });
      continue;
    }
    const service = groupServiceByIndex.get(index)!;
    const policy = networkPolicyWrites(bd, index, plan.status.epoch, policyByName.get(groupName(index)));
    actions.push(...inScope(scope, [...groupServiceWrites(bd, service, readRecord(service)!), ...policy, ...plan.actions]));
    if (pdbByName) actions.push(...inScope(budgetScope(index), budgetWrites(bd, index, pdb)));
    events.push(...plan.events.map((e) => ({ ...e, scope })));
    statuses.push(plan.status);
    if (plan.upToDate) upToDate.add(index);
    if (plan.wakeAt !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, plan.wakeAt);
  }
  for (const index of rollout.create) {
    const group = newGroup(bd, index, revision, now, clusterDomain, policyByName.get(groupName(index)));
    const scope = groupScope(index);
    actions.push(...inScope(scope, group.writes));
    if (pdbByName) actions.push(...inScope(budgetScope(index), budgetWrites(bd, index, pdbByName.get(groupName(index)))));
    statuses.push(group.status);
    upToDate.add(index);
    const shape = groupShape(bd.spec);
    events.push({ type: 'Normal', reason: 'GroupCreated', message: `creating group ${index} at revision ${revision} (${shape.pods} pod(s) x ${shape.gpusPerPod} GPUs, ${shape.ranks} ranks)`, scope });
  }

  // A budget left by a group that no longer exists (its delete failed, or an older operator's) goes too.
  const kept = new Set(statuses.map((g) => groupName(g.index)));
  for (const [pdbName, pdb] of pdbByName ?? []) {
    const index = Number(pdb.metadata?.labels?.[LABELS.group]);
    if (!kept.has(pdbName) && !busyIndices.has(index) && !plans.has(index)) {
      actions.push(...inScope(budgetScope(index), [{ kind: 'deletePdb', name: pdbName, uid: pdb.metadata?.uid ?? '' }]));
    }
  }

  // So does the NetworkPolicy of a group that no longer exists, once none of its pods is left (they stay isolated while they terminate).
  for (const [policyName, policy] of policyByName) {
    const index = Number(policy.metadata?.labels?.[LABELS.group]);
    if (!kept.has(policyName) && !plans.has(index) && !busyIndices.has(index)) actions.push(...inScope(groupScope(index), [deleteNetworkPolicy(policy)]));
  }

  const status = computeStatus({ bd, groups: statuses, upToDate, revision, now, clientService: clientService !== undefined });
  // Look again when the progress deadline expires, to report it.
  const deadline = progressDeadlineAt(bd, status);
  if (deadline !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, deadline);
  const previous = bd.status;
  if (status.phase === 'Available' && previous?.currentRevision && previous.currentRevision !== revision && previous.updateRevision === revision) {
    events.push({ type: 'Normal', reason: 'RolloutComplete', message: `all ${bd.spec.replicas} group(s) run revision ${revision}` });
  }
  const stalled = progressDeadlineEvent(previous?.conditions, status);
  if (stalled) events.push(stalled);
  const plan: DeploymentPlan = { actions, events, status };
  if (wakeAt !== undefined) plan.wakeAt = wakeAt;
  return plan;
}
