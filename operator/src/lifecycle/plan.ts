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
import { desiredGroupPods } from '../groups/pod.js';
import { desiredGroupPdb } from '../groups/pdb.js';
import { LABELS } from '../groups/labels.js';
import { clientServiceName, groupServiceName, masterAddress } from '../groups/names.js';
import { podRevision } from '../groups/revision.js';
import { groupShape } from '../groups/shape.js';
import type { Action, EventSpec } from './actions.js';
import { readRecord, recordAnnotations, type GroupRecord } from './group-record.js';
import { planGroup, type GroupPlan } from './group-plan.js';
import { isTerminating, podGroup, type NodeViews } from './observe.js';
import { planRollout } from './rollout.js';
import { computeStatus } from './status.js';
import { domainPicker } from './placement.js';

/** Changing this annotation's value on a BloomDeployment resets every group's restart budget (and revives Failed groups). */
export const RESET_RESTARTS_ANNOTATION = `${API_GROUP}/reset-restarts`;

export interface DeploymentObservation {
  bd: BloomDeployment;
  services: readonly V1Service[];
  pods: readonly V1Pod[];
  /** Every group pod the operator sees (all deployments): what occupies the GPUs of each domain. */
  placementPods?: readonly V1Pod[];
  /** The deployment's PodDisruptionBudgets; undefined when the operator may not manage them. */
  pdbs: readonly V1PodDisruptionBudget[] | undefined;
  nodes: NodeViews | undefined;
  now: number;
  clusterDomain: string;
}

export interface DeploymentPlan {
  actions: Action[];
  events: EventSpec[];
  status: BloomDeploymentStatus;
  wakeAt?: number;
}

function clientServiceActions(bd: BloomDeployment, services: readonly V1Service[]): Action[] {
  const desired = desiredClientService(bd);
  const existing = services.find((s) => s.metadata?.name === clientServiceName(bd.metadata.name ?? ''));
  if (!existing) return [{ kind: 'createService', service: desired }];
  const same = JSON.stringify(existing.spec?.selector) === JSON.stringify(desired.spec?.selector)
    && JSON.stringify((existing.spec?.ports ?? []).map((p) => [p.name, p.port, p.targetPort]))
      === JSON.stringify((desired.spec?.ports ?? []).map((p) => [p.name, p.port, p.targetPort]));
  if (same) return [];
  return [{ kind: 'patchServiceSpec', name: desired.metadata!.name!, resourceVersion: existing.metadata?.resourceVersion ?? '', selector: desired.spec!.selector!, ports: desired.spec!.ports! }];
}

function newGroup(bd: BloomDeployment, index: number, revision: string, now: number, clusterDomain: string, domain: string | undefined): { actions: Action[]; status: GroupStatus } {
  const record: GroupRecord = { index, epoch: 1, revision, epochStarted: now, restarts: 0, restartTimes: [] };
  const service = desiredGroupService(bd, index, record.epoch);
  const annotations = Object.fromEntries(Object.entries(recordAnnotations(record)).filter((e): e is [string, string] => e[1] !== null));
  service.metadata!.annotations = { ...service.metadata!.annotations, ...annotations };
  const pods = desiredGroupPods({ bd, group: index, epoch: record.epoch, revision, clusterDomain, ...(domain === undefined ? {} : { domain }) })
    .map((pod): Action => ({ kind: 'createPod', pod }));
  const name = bd.metadata.name ?? '';
  const leaderAddress = masterAddress(name, index, bd.metadata.namespace ?? 'default', clusterDomain, groupShape(bd.spec).pods);
  return {
    actions: [{ kind: 'createService', service }, ...pods],
    status: { index, phase: 'Pending', epoch: 1, revision, readyPods: 0, readyRanks: 0, restarts: 0, leaderAddress },
  };
}

function deleteAll(pods: readonly V1Pod[]): Action[] {
  return pods.filter((p) => !isTerminating(p)).map((p) => ({ kind: 'deletePod', name: p.metadata?.name ?? '', uid: p.metadata?.uid ?? '', force: false }) as Action);
}

export function planDeployment(obs: DeploymentObservation): DeploymentPlan {
  const { bd, now, clusterDomain } = obs;
  const groupName = (index: number) => groupServiceName(bd.metadata.name ?? '', index);
  const revision = podRevision(bd.spec);
  const resetToken = bd.metadata.annotations?.[RESET_RESTARTS_ANNOTATION];
  const actions: Action[] = clientServiceActions(bd, obs.services);
  const events: EventSpec[] = [];

  const podsByGroup = new Map<number, V1Pod[]>();
  for (const pod of obs.pods) {
    const g = podGroup(pod);
    if (!Number.isInteger(g)) continue;
    podsByGroup.set(g, [...(podsByGroup.get(g) ?? []), pod]);
  }
  const picker = domainPicker(bd.spec, obs.nodes, obs.placementPods ?? obs.pods);
  const groupServices = obs.services.filter((s) => s.metadata?.labels?.[LABELS.group] !== undefined);
  const plans = new Map<number, GroupPlan>();
  for (const service of groupServices) {
    const record = readRecord(service);
    if (!record) continue;
    plans.set(record.index, planGroup({
      bd, record, serviceResourceVersion: service.metadata?.resourceVersion ?? '', pods: podsByGroup.get(record.index) ?? [],
      nodes: obs.nodes, now, revision, resetToken, clusterDomain, picker,
    }));
  }

  // Pods of a group whose Service is gone belong to a removed group: they go, and their index waits.
  const busyIndices = new Set<number>();
  for (const [index, pods] of podsByGroup) {
    if (plans.has(index)) continue;
    busyIndices.add(index);
    actions.push(...deleteAll(pods));
  }

  const rollout = planRollout({
    groups: [...plans.values()].map((p) => ({ index: p.status.index, ready: p.ready, upToDate: p.upToDate })),
    replicas: bd.spec.replicas,
    maxSurge: bd.spec.rollout.maxSurge,
    maxUnavailable: bd.spec.rollout.maxUnavailable,
    busyIndices,
  });

  const pdbNames = obs.pdbs ? new Set(obs.pdbs.map((p) => p.metadata?.name ?? '')) : undefined;
  const statuses: GroupStatus[] = [];
  const upToDate = new Set<number>();
  let wakeAt: number | undefined;
  for (const [index, plan] of plans) {
    if (rollout.remove.includes(index)) {
      const pods = podsByGroup.get(index) ?? [];
      actions.push({ kind: 'deleteService', name: groupName(index) }, ...deleteAll(pods));
      if (pdbNames?.has(groupName(index))) actions.push({ kind: 'deletePdb', name: groupName(index) });
      const why = plan.upToDate ? 'scale down' : plan.status.revision !== revision ? `outdated revision ${plan.status.revision}` : 'on a cordoned node or failing';
      events.push({ type: 'Normal', reason: 'GroupRemoved', message: `removing group ${index} (${why})` });
      continue;
    }
    actions.push(...plan.actions);
    if (pdbNames && !pdbNames.has(groupName(index))) actions.push({ kind: 'createPdb', pdb: desiredGroupPdb(bd, index) });
    events.push(...plan.events);
    statuses.push(plan.status);
    if (plan.upToDate) upToDate.add(index);
    if (plan.wakeAt !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, plan.wakeAt);
  }
  for (const index of rollout.create) {
    const group = newGroup(bd, index, revision, now, clusterDomain, picker.pick(groupName(index)));
    actions.push(...group.actions);
    if (pdbNames) actions.push({ kind: 'createPdb', pdb: desiredGroupPdb(bd, index) });
    statuses.push(group.status);
    upToDate.add(index);
    const shape = groupShape(bd.spec);
    events.push({ type: 'Normal', reason: 'GroupCreated', message: `creating group ${index} at revision ${revision} (${shape.pods} pod(s) x ${shape.gpusPerPod} GPUs, ${shape.ranks} ranks)` });
  }

  const status = computeStatus({ bd, groups: statuses, upToDate, revision, now });
  const previous = bd.status;
  if (status.phase === 'Available' && previous?.currentRevision && previous.currentRevision !== revision && previous.updateRevision === revision) {
    events.push({ type: 'Normal', reason: 'RolloutComplete', message: `all ${bd.spec.replicas} group(s) run revision ${revision}` });
  }
  const plan: DeploymentPlan = { actions, events, status };
  if (wakeAt !== undefined) plan.wakeAt = wakeAt;
  return plan;
}
