/** The status of a BloomDeployment, computed from its groups' plans; times are kept while a value does not change. */
import type { BloomDeployment, BloomDeploymentStatus, Condition, DeploymentPhase, GroupStatus } from '../api/types.js';
import { CONDITION_TYPES } from '../api/types.js';
import { leaderSelectorString } from '../groups/labels.js';
import { clientServiceName } from '../groups/names.js';
import { groupShape } from '../groups/shape.js';

export interface StatusInput {
  bd: BloomDeployment;
  groups: readonly GroupStatus[];
  /** Indices of groups that run the current revision on schedulable nodes. */
  upToDate: ReadonlySet<number>;
  revision: string;
  now: number;
  /** The client Service exists and is controlled by this deployment: without it no group is reachable. */
  clientService: boolean;
}

function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined, previous: Condition[] | undefined, now: number): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  const c: Condition = { type, status, reason, message, lastTransitionTime: before?.status === status ? before.lastTransitionTime : new Date(now).toISOString() };
  if (generation !== undefined) c.observedGeneration = generation;
  return c;
}

export function computeStatus({ bd, groups, upToDate, revision, now, clientService }: StatusInput): BloomDeploymentStatus {
  const { replicas, rollout } = bd.spec;
  const previous = bd.status;
  const generation = bd.metadata.generation;
  const sorted = [...groups].sort((a, b) => a.index - b.index).map((g) => {
    const before = previous?.groups?.find((p) => p.index === g.index);
    const since = before && before.phase === g.phase && before.epoch === g.epoch ? before.lastTransitionTime : undefined;
    return { ...g, lastTransitionTime: since ?? new Date(now).toISOString() };
  });
  const ready = sorted.filter((g) => g.phase === 'Ready').length;
  const failed = sorted.filter((g) => g.phase === 'Failed');
  const restarting = sorted.filter((g) => g.phase === 'Restarting');
  const updated = sorted.filter((g) => upToDate.has(g.index) && g.phase !== 'Failed').length;
  const outdatedRevisions = sorted.filter((g) => g.revision !== revision).map((g) => g.revision);
  const minAvailable = Math.max(0, replicas - rollout.maxUnavailable);
  const complete = clientService && sorted.length === replicas && updated === replicas && ready === replicas;
  const available = clientService && ready >= minAvailable && (replicas === 0 || ready > 0);

  let phase: DeploymentPhase;
  if (replicas > 0 && failed.length === sorted.length && failed.length > 0) phase = 'Failed';
  else if (failed.length > 0 || restarting.length > 0) phase = 'Degraded';
  else if (complete) phase = 'Available';
  else if (ready > 0 || sorted.length > 0) phase = 'Progressing';
  else phase = 'Pending';

  const progressingReason = complete ? 'Complete' : outdatedRevisions.length > 0 ? 'RollingOut' : sorted.length !== replicas ? 'Scaling' : 'GroupsStarting';
  const progressingMessage = complete
    ? `${replicas} group(s) ready at revision ${revision}`
    : `${ready}/${replicas} group(s) ready, ${updated} at revision ${revision}, ${sorted.length} exist`;
  const degradedMessage = [
    ...failed.map((g) => `group ${g.index} failed: ${g.message ?? g.lastFailure?.message ?? ''}`),
    ...restarting.map((g) => `group ${g.index} restarting${g.lastFailure ? `: ${g.lastFailure.reason}${g.lastFailure.message ? `: ${g.lastFailure.message}` : ''}` : ''}`),
  ].join('; ');

  const conditions: Condition[] = [
    clientService
      ? condition(CONDITION_TYPES.available, available, available ? 'MinimumGroupsReady' : 'TooFewGroupsReady',
        `${ready} of ${replicas} group(s) ready (minimum ${minAvailable})`, generation, previous?.conditions, now)
      : condition(CONDITION_TYPES.available, false, 'NoClientService',
        `the client Service ${clientServiceName(bd.metadata.name ?? '')} is missing or not controlled by this BloomDeployment`, generation, previous?.conditions, now),
    condition(CONDITION_TYPES.progressing, !complete, progressingReason, progressingMessage, generation, previous?.conditions, now),
    condition(CONDITION_TYPES.degraded, failed.length + restarting.length > 0, failed.length ? 'GroupFailed' : restarting.length ? 'GroupRestarting' : 'AllGroupsHealthy',
      degradedMessage || 'no group is failed or restarting', generation, previous?.conditions, now),
  ];

  const status: BloomDeploymentStatus = {
    replicas: sorted.length,
    readyReplicas: ready,
    updatedReplicas: updated,
    // The revision stays "current" until the new one is fully rolled out (RolloutComplete is emitted on that change).
    currentRevision: complete ? revision : outdatedRevisions.length > 0 ? mostCommon(outdatedRevisions) : previous?.currentRevision ?? revision,
    updateRevision: revision,
    selector: leaderSelectorString(bd.metadata.name ?? ''),
    podsPerGroup: groupShape(bd.spec).pods,
    gpusPerPod: bd.spec.gpusPerPod,
    phase,
    conditions,
    groups: sorted,
  };
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
}

/** A write of this reconcile the API refused (not a conflict with a stale cache, which is just retried). */
export interface WriteFailure {
  reason: 'FailedCreate' | 'FailedDelete' | 'FailedPatch';
  message: string;
}

/**
 * Sets ReplicaFailure (as Deployment does) while writes are refused: True with the first refusal's
 * reason and every message; the condition is absent once a reconcile's writes all land.
 */
export function withWriteFailures(status: BloomDeploymentStatus, failures: readonly WriteFailure[], previous: Condition[] | undefined, generation: number | undefined, now: number): BloomDeploymentStatus {
  const others = (status.conditions ?? []).filter((c) => c.type !== CONDITION_TYPES.replicaFailure);
  if (failures.length === 0) return { ...status, conditions: others };
  const message = failures.map((f) => f.message).join('; ');
  const failed = condition(CONDITION_TYPES.replicaFailure, true, failures[0]!.reason, message.length > 1024 ? `${message.slice(0, 1021)}...` : message, generation, previous, now);
  return { ...status, conditions: [...others, failed] };
}
