/**
 * The status of a BloomDeployment, computed from its groups' plans; times are kept while a value does not change.
 *
 * Conditions, for people and for GitOps tools:
 * - Available, Progressing, Degraded (as a Deployment's; ReplicaFailure is added by withWriteFailures);
 * - Ready, the normal-true summary kstatus and Argo CD read: True only when the deployment is
 *   complete (every group Ready at the current revision, the client Service ours);
 * - Reconciling and Stalled, kstatus' abnormal-true conditions, present only while True: Reconciling
 *   while a rollout, a scale, a start or a restart is under way; Stalled when the deployment cannot
 *   progress without intervention (every group Failed, or the progress deadline exceeded).
 *
 * The progress deadline (spec.rollout.progressDeadlineSeconds) has Deployment's semantics: while the
 * deployment is neither complete nor Failed, progress is a group becoming Ready (a new group, or a
 * new epoch of one), more groups running the current revision, or a new spec (generation). Its time is
 * kept in status.lastProgressTime rather than in Progressing's lastTransitionTime: a metav1.Condition
 * has no lastUpdateTime, and moving lastTransitionTime without a change of status would break its
 * meaning for every other reader. The field exists only while the clock runs and changes only on
 * progress, so an unchanged deployment still makes no status write. Past the deadline Progressing is
 * False (ProgressDeadlineExceeded) and Stalled True; the operator keeps trying, and the next progress
 * makes it Progressing again.
 */
import type { BloomDeployment, BloomDeploymentStatus, Condition, DeploymentPhase, GroupStatus } from '../api/types.js';
import { CONDITION_TYPES } from '../api/types.js';
import { leaderSelectorString } from '../groups/labels.js';
import { clientServiceName } from '../groups/names.js';
import { groupShape } from '../groups/shape.js';
import type { EventSpec } from './actions.js';

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

export const PROGRESS_DEADLINE_EXCEEDED = 'ProgressDeadlineExceeded';
export const ALL_GROUPS_FAILED = 'AllGroupsFailed';

function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined, previous: Condition[] | undefined, now: number): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  const c: Condition = { type, status, reason, message, lastTransitionTime: before?.status === status ? before.lastTransitionTime : new Date(now).toISOString() };
  if (generation !== undefined) c.observedGeneration = generation;
  return c;
}

const named = (groups: readonly GroupStatus[]) => `${groups.length === 1 ? 'group' : 'groups'} ${groups.map((g) => g.index).join(', ')}`;

/** Why a deployment that is neither complete nor Failed is not done yet: reasons by precedence, with every detail that applies. */
function inProgress(input: {
  replicas: number; revision: string; exist: number; outdated: number; restarting: readonly GroupStatus[]; failed: readonly GroupStatus[];
  replacing: readonly GroupStatus[]; starting: readonly GroupStatus[]; clientService: boolean; serviceName: string;
}): { reason: string; detail: string } {
  const parts: Array<[reason: string, detail: string]> = [];
  if (input.outdated > 0) parts.push(['RollingOut', `rolling out revision ${input.revision}, ${input.outdated} group(s) at older revisions left`]);
  // A surge during a rollout or a replacement is no scale.
  if (input.exist !== input.replicas && input.outdated === 0 && input.replacing.length === 0) parts.push(['Scaling', `scaling from ${input.exist} to ${input.replicas} group(s)`]);
  if (input.restarting.length > 0) parts.push(['GroupsRestarting', `${named(input.restarting)} restarting`]);
  if (input.failed.length > 0) parts.push(['GroupsFailed', `${named(input.failed)} failed`]);
  if (input.replacing.length > 0) parts.push(['ReplacingGroups', `${named(input.replacing)} to be replaced (a node of theirs is unschedulable or draining)`]);
  if (input.starting.length > 0) {
    const pending = input.starting.filter((g) => g.phase === 'Pending').length;
    parts.push(['GroupsStarting', `${named(input.starting)} starting (${pending} Pending, ${input.starting.length - pending} Starting)`]);
  }
  if (!input.clientService) parts.push(['WaitingForClientService', `waiting for the client Service ${input.serviceName} (missing or not controlled by this BloomDeployment)`]);
  if (parts.length === 0) parts.push(['Reconciling', 'reconciling']);
  return { reason: parts[0]![0], detail: parts.map((p) => p[1]).join('; ') };
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
  const allFailed = replicas > 0 && failed.length === sorted.length && failed.length > 0;

  let phase: DeploymentPhase;
  if (allFailed) phase = 'Failed';
  else if (failed.length > 0 || restarting.length > 0) phase = 'Degraded';
  else if (complete) phase = 'Available';
  else if (ready > 0 || sorted.length > 0) phase = 'Progressing';
  else phase = 'Pending';

  const summary = `${ready}/${replicas} group(s) ready, ${updated} at revision ${revision}, ${sorted.length} exist`;
  const degradedMessage = [
    ...failed.map((g) => `group ${g.index} failed: ${g.message ?? g.lastFailure?.message ?? ''}`),
    ...restarting.map((g) => `group ${g.index} restarting${g.lastFailure ? `: ${g.lastFailure.reason}${g.lastFailure.message ? `: ${g.lastFailure.message}` : ''}` : ''}`),
  ].join('; ');

  // The progress clock runs only while the deployment is neither complete nor Failed.
  let lastProgressTime: string | undefined;
  let deadlineExceeded = false;
  const running = !complete && !allFailed;
  if (running) {
    const kept = previous?.observedGeneration === generation && previous?.lastProgressTime ? Date.parse(previous.lastProgressTime) : NaN;
    const becameReady = sorted.some((g) => g.phase === 'Ready' && !previous?.groups?.some((p) => p.index === g.index && p.epoch === g.epoch && p.phase === 'Ready'));
    const progressed = becameReady || updated > (previous?.updatedReplicas ?? 0);
    const since = Number.isNaN(kept) || progressed ? now : kept;
    lastProgressTime = new Date(since).toISOString();
    deadlineExceeded = now - since >= rollout.progressDeadlineSeconds * 1000;
  }

  let progressing: { ok: boolean; reason: string; message: string };
  let stalled: { reason: string; message: string } | undefined;
  if (complete) {
    progressing = { ok: false, reason: 'Complete', message: `${replicas} group(s) ready at revision ${revision}` };
  } else if (allFailed) {
    const message = `all ${failed.length} group(s) failed, none is starting: ${degradedMessage}`;
    progressing = { ok: false, reason: ALL_GROUPS_FAILED, message };
    stalled = { reason: ALL_GROUPS_FAILED, message };
  } else {
    const why = inProgress({
      replicas, revision, exist: sorted.length, outdated: outdatedRevisions.length, restarting, failed, clientService,
      replacing: sorted.filter((g) => g.revision === revision && g.phase !== 'Failed' && !upToDate.has(g.index)),
      starting: sorted.filter((g) => g.phase === 'Pending' || g.phase === 'Starting'),
      serviceName: clientServiceName(bd.metadata.name ?? ''),
    });
    if (deadlineExceeded) {
      const message = `no progress for ${rollout.progressDeadlineSeconds}s (spec.rollout.progressDeadlineSeconds) since ${lastProgressTime}: ${why.detail}; ${summary}`;
      progressing = { ok: false, reason: PROGRESS_DEADLINE_EXCEEDED, message };
      stalled = { reason: PROGRESS_DEADLINE_EXCEEDED, message };
    } else {
      progressing = { ok: true, reason: why.reason, message: `${why.detail}; ${summary}` };
    }
  }

  const prev = previous?.conditions;
  const conditions: Condition[] = [
    clientService
      ? condition(CONDITION_TYPES.available, available, available ? 'MinimumGroupsReady' : 'TooFewGroupsReady',
        `${ready} of ${replicas} group(s) ready (minimum ${minAvailable})`, generation, prev, now)
      : condition(CONDITION_TYPES.available, false, 'NoClientService',
        `the client Service ${clientServiceName(bd.metadata.name ?? '')} is missing or not controlled by this BloomDeployment`, generation, prev, now),
    condition(CONDITION_TYPES.progressing, progressing.ok, progressing.reason, progressing.message, generation, prev, now),
    condition(CONDITION_TYPES.degraded, failed.length + restarting.length > 0, failed.length ? 'GroupFailed' : restarting.length ? 'GroupRestarting' : 'AllGroupsHealthy',
      degradedMessage || 'no group is failed or restarting', generation, prev, now),
    complete
      ? condition(CONDITION_TYPES.ready, true, 'Complete', progressing.message, generation, prev, now)
      : condition(CONDITION_TYPES.ready, false, stalled?.reason ?? progressing.reason, stalled?.message ?? progressing.message, generation, prev, now),
  ];
  if (stalled) conditions.push(condition(CONDITION_TYPES.stalled, true, stalled.reason, stalled.message, generation, prev, now));
  else if (!complete) conditions.push(condition(CONDITION_TYPES.reconciling, true, progressing.reason, progressing.message, generation, prev, now));

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
    ...(lastProgressTime === undefined ? {} : { lastProgressTime }),
    conditions,
    groups: sorted,
  };
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

const progressingOf = (conditions: readonly Condition[] | undefined) => conditions?.find((c) => c.type === CONDITION_TYPES.progressing);

/**
 * When the progress deadline of a computed status expires: the reconcile must look again then to
 * report it. Undefined when no clock runs (complete, Failed) or the deadline is already reported.
 */
export function progressDeadlineAt(bd: BloomDeployment, status: BloomDeploymentStatus): number | undefined {
  if (!status.lastProgressTime || progressingOf(status.conditions)?.reason === PROGRESS_DEADLINE_EXCEEDED) return undefined;
  const since = Date.parse(status.lastProgressTime);
  return Number.isNaN(since) ? undefined : since + bd.spec.rollout.progressDeadlineSeconds * 1000;
}

/** The Warning of the transition into ProgressDeadlineExceeded (once: not while the previous status already said so). */
export function progressDeadlineEvent(previous: readonly Condition[] | undefined, status: BloomDeploymentStatus): EventSpec | undefined {
  const now = progressingOf(status.conditions);
  if (now?.reason !== PROGRESS_DEADLINE_EXCEEDED || progressingOf(previous)?.reason === PROGRESS_DEADLINE_EXCEEDED) return undefined;
  return { type: 'Warning', reason: PROGRESS_DEADLINE_EXCEEDED, message: now.message };
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
