/**
 * One reconcile of one tensor-parallel group, pure: derive its state (group-state.ts) from the
 * record and the pods, detect the event that applies, and return the writes that enter the next
 * state, with its status. A group is an all-or-nothing unit: a fault of any pod (any of its
 * ranks) bumps the epoch and tears every pod down, and the new incarnation starts only when no pod
 * of an older epoch is left. Workload failures are charged to maxGroupRestarts; disruptions
 * recreate the group without charging it, after their own back-off.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment, GroupFailure, GroupStatus } from '../api/types.js';
import { desiredPodGroup, podGroupNames, usesPodGroups } from '../groups/gang.js';
import { desiredGroupPod, isGangGated } from '../groups/pod.js';
import { groupEpochSelector } from '../groups/labels.js';
import { groupServiceName, masterAddress } from '../groups/names.js';
import { groupShape } from '../groups/shape.js';
import type { EventSpec, Write } from './actions.js';
import { backoffMs, restartsInWindow } from './backoff.js';
import { pinnedDomain } from './capacity.js';
import type { Placer } from './placement.js';
import { recordAnnotations, type GroupRecord } from './group-record.js';
import { FAILURE_CLASS, isLive, PHASE_OF, transition, type GroupEvent, type GroupState } from './group-state.js';
import { drainOf, groupReadyCondition, hasGroupGate, isGated, isReady, isTerminating, notReadySince, ownGateIndex, podEpoch, podFault, podIndex, scheduledAt, schedulingProblem, unschedulableSince, type NodeViews } from './observe.js';

export interface GroupPlanInput {
  bd: BloomDeployment;
  record: GroupRecord;
  /** Resource version of the group Service (guards record writes). */
  serviceResourceVersion: string;
  /** Every pod of this group, any epoch. */
  pods: readonly V1Pod[];
  nodes: NodeViews | undefined;
  now: number;
  /** podRevision of the current spec. */
  revision: string;
  /** Value of the deployment's reset annotation, if set. */
  resetToken: string | undefined;
  clusterDomain: string;
  /** Chooses the domain of a gated multi-pod group from the cluster-wide view; without one (no node access), pod 0 leads. */
  place?: Placer;
}

export interface GroupPlan {
  actions: Write[];
  events: EventSpec[];
  status: GroupStatus;
  /** The state the group is in after this reconcile's writes. */
  state: GroupState;
  /** Reconcile again at this time (ms) at the latest: back-off end, a timeout that may fire. */
  wakeAt?: number;
  ready: boolean;
  failed: boolean;
  /** Runs the current revision and is not being drained, so the rollout keeps it. */
  upToDate: boolean;
}

const ms = (seconds: number) => seconds * 1000;
/** A group waiting for room is planned again this often (from the caches; no API call): capacity frees without an event of its own. */
export const PLACEMENT_RETRY_MS = 5_000;

function failureOf(reason: string, message: string, now: number, pod?: number): GroupFailure {
  const failure: GroupFailure = { reason, message, time: new Date(now).toISOString(), class: FAILURE_CLASS[reason] ?? 'Workload' };
  if (pod !== undefined) failure.pod = pod;
  return failure;
}

/**
 * Deletes of pods that must go: any not yet terminating (with the PodGroups it belongs to); a terminating one is force-deleted once it
 * is stuck: nodeLostGraceSeconds past its deletion deadline (a dead kubelet never confirms; this
 * works without a node watch), or as long on a lost node.
 */
function podDeletions(pods: readonly V1Pod[], input: GroupPlanInput): { actions: Write[]; wakeAt?: number } {
  const actions: Write[] = [];
  let wakeAt: number | undefined;
  const grace = ms(input.bd.spec.failurePolicy.nodeLostGraceSeconds);
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    const uid = pod.metadata?.uid ?? '';
    if (!isTerminating(pod)) {
      actions.push({ kind: 'deletePod', name, uid, force: false });
      continue;
    }
    const deadline = new Date(pod.metadata!.deletionTimestamp!).getTime();
    const nodeName = pod.spec?.nodeName;
    const node = nodeName ? input.nodes?.get(nodeName) : undefined;
    const nodeLost = input.nodes !== undefined && nodeName !== undefined && (!node || !node.ready);
    const stuckAt = Math.min(deadline + grace, nodeLost ? Math.max(deadline, node?.since ?? 0) + grace : Infinity);
    if (input.now >= stuckAt) actions.push({ kind: 'deletePod', name, uid, force: true });
    else wakeAt = Math.min(wakeAt ?? Infinity, stuckAt);
  }
  actions.push(...podGroupNames(pods.filter((p) => !isTerminating(p))).map((name): Write => ({ kind: 'deletePodGroup', name })));
  return wakeAt === undefined ? { actions } : { actions, wakeAt };
}

/** The state the record and the pods put the group in (no event applied yet). */
export function deriveState(record: GroupRecord, current: readonly V1Pod[], stale: readonly V1Pod[], podsPerGroup: number, now: number): GroupState {
  if (record.failed !== undefined) return 'Failed';
  if (record.notBefore !== undefined && now < record.notBefore) return 'BackingOff';
  if (stale.length > 0) return 'Terminating';
  if (new Set(current.map(podIndex)).size < podsPerGroup) return 'Creating';
  if (current.some(isGated)) return 'Gated';
  if (current.some((p) => !p.spec?.nodeName)) return 'Scheduling';
  if (record.readySince !== undefined) return 'Ready';
  return 'Starting';
}

/** The first reason the current incarnation cannot go on, with the time a pending timeout would fire. */
function detectFailure(state: GroupState, current: readonly V1Pod[], input: GroupPlanInput): { failure?: GroupFailure; wakeAt?: number } {
  const { record, now, bd } = input;
  const policy = bd.spec.failurePolicy;
  const { pods } = groupShape(bd.spec);
  let wakeAt: number | undefined;
  const wake = (t: number) => { wakeAt = Math.min(wakeAt ?? Infinity, t); };
  for (const pod of [...current].sort((a, b) => podIndex(a) - podIndex(b))) {
    const seen = podFault(pod, input.nodes, now, ms(policy.nodeLostGraceSeconds));
    if (seen.fault) return { failure: failureOf(seen.fault.reason, seen.fault.message, now, podIndex(pod)) };
    if (seen.wakeAt !== undefined) wake(seen.wakeAt);
  }
  // Handed to the scheduler: the operator lifted its gate (SchedulingGates) or, when Kueue or the
  // kube-scheduler's gang scheduling admits the group, a pod of it was bound. A pod missing before that is only created.
  const released = isGangGated(bd.spec) ? current.some((p) => !isGated(p)) : current.some((p) => p.spec?.nodeName);
  const present = new Set(current.map(podIndex));
  if (released && present.size < pods) {
    const missing = [...Array(pods).keys()].find((i) => !present.has(i))!;
    return { failure: failureOf('RankDeleted', `pod ${missing} of epoch ${record.epoch} disappeared`, now, missing) };
  }
  const result = () => (wakeAt === undefined ? {} : { wakeAt });
  if (state === 'Ready') {
    for (const pod of current) {
      const since = notReadySince(pod);
      if (since === undefined) continue;
      const deadline = since + ms(policy.readinessLossSeconds);
      if (now >= deadline) {
        return { failure: failureOf('ReadinessLost', `pod ${pod.metadata?.name} not ready for ${policy.readinessLossSeconds}s`, now, podIndex(pod)) };
      }
      wake(deadline);
    }
    return result();
  }
  const bound = current.filter((p) => p.spec?.nodeName);
  const stuck = current.map(unschedulableSince).filter((t): t is number => t !== undefined);
  if (released && bound.length > 0 && stuck.length > 0) {
    // Ranks that must follow the bound ones into their domain (pod affinity) cannot fit there:
    // only a fresh placement of the whole group helps. A disruption: never charged to the budget.
    const deadline = Math.max(...stuck) + ms(policy.placementTimeoutSeconds);
    if (now >= deadline) {
      return { failure: failureOf('PlacementStalled', `${stuck.length} pod(s) unschedulable in the topology domain of the ${bound.length} bound pod(s) for ${policy.placementTimeoutSeconds}s`, now) };
    }
    wake(deadline);
    return result();
  }
  if (state !== 'Starting') return result();
  // The startup clock runs from the moment the last pod was bound: waiting for GPUs is not starting.
  const deadline = (scheduledAt(current) ?? record.epochStarted) + ms(policy.startupTimeoutSeconds);
  if (now >= deadline) {
    return { failure: failureOf('StartupTimeout', `group not ready within startupTimeoutSeconds=${policy.startupTimeoutSeconds} of its last pod being scheduled`, now) };
  }
  wake(deadline);
  return result();
}

export function planGroup(input: GroupPlanInput): GroupPlan {
  const { bd, now } = input;
  const policy = bd.spec.failurePolicy;
  const shape = groupShape(bd.spec);
  const name = bd.metadata.name ?? '';
  const actions: Write[] = [];
  const events: EventSpec[] = [];
  let record: GroupRecord = { ...input.record };
  let wakeAt: number | undefined;
  const wake = (t: number | undefined) => { if (t !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, t); };
  // One record write per plan, holding the final record: two would carry the same resourceVersion.
  const writeRecord = (next: GroupRecord) => {
    const earlier = actions.findIndex((a) => a.kind === 'patchRecord');
    if (earlier >= 0) actions.splice(earlier, 1);
    actions.push({
      kind: 'patchRecord',
      name: groupServiceName(name, record.index),
      resourceVersion: input.serviceResourceVersion,
      annotations: recordAnnotations(next),
      ...(next.epoch !== input.record.epoch ? { selector: groupEpochSelector(name, next.index, next.epoch) } : {}),
    });
    record = next;
  };
  const upToDateRevision = record.revision === input.revision;
  const podsOf = () => ({ current: input.pods.filter((p) => podEpoch(p) === record.epoch), stale: input.pods.filter((p) => podEpoch(p) !== record.epoch) });
  const observed = podsOf();
  let state = deriveState(record, observed.current, observed.stale, shape.pods, now);
  const move = (event: GroupEvent) => { state = transition(state, event); };
  /** A new incarnation: the next epoch, its clock reset; the old pods go (deleted below as stale). */
  const nextIncarnation = (r: GroupRecord): GroupRecord => {
    const next: GroupRecord = { ...r, epoch: r.epoch + 1, epochStarted: now };
    delete next.readySince;
    delete next.failed;
    delete next.failedAt;
    return next;
  };

  if (input.resetToken !== undefined && input.resetToken !== record.resetToken) {
    const wasFailed = state === 'Failed';
    const next: GroupRecord = { ...record, restartTimes: [], disruptionTimes: [], resetToken: input.resetToken };
    delete next.notBefore;
    if (wasFailed || record.restartTimes.length > 0) {
      events.push({ type: 'Normal', reason: 'GroupReset', message: `group ${record.index}: restart budget reset by annotation` });
    }
    writeRecord(wasFailed ? nextIncarnation(next) : next);
    if (wasFailed) move('Reset');
  }
  if (state === 'Failed' && record.failedAt !== undefined && now >= record.failedAt + ms(policy.restartWindowSeconds)) {
    // Give up is not for ever: a window later the group gets a fresh budget and one more try.
    writeRecord(nextIncarnation({ ...record, restartTimes: [] }));
    move('RetryWindowElapsed');
    events.push({ type: 'Normal', reason: 'GroupRetrying', message: `group ${record.index}: retrying a restartWindowSeconds=${policy.restartWindowSeconds} after it failed (epoch ${record.epoch})` });
  }

  const { current, stale } = podsOf();
  if (state === 'Terminating' && stale.length === 0) move('OldEpochGone');
  const staleDeletes = podDeletions(stale, input);
  actions.push(...staleDeletes.actions);
  wake(staleDeletes.wakeAt);

  const finish = (extra: { message?: string; upToDate?: boolean } = {}): GroupPlan => {
    readinessGates();
    const drain = current.map((p) => drainOf(p, input.nodes)).find((d) => d !== undefined);
    const readyPods = state === 'Terminating' || state === 'BackingOff' ? 0 : current.filter(isReady).length;
    const status: GroupStatus = {
      index: record.index,
      phase: PHASE_OF[state],
      epoch: record.epoch,
      revision: record.revision,
      readyPods,
      readyRanks: readyPods * shape.gpusPerPod,
      restarts: record.restarts,
      leaderAddress: masterAddress(name, record.index, bd.metadata.namespace ?? 'default', input.clusterDomain, shape.pods),
    };
    if (record.disruptions) status.disruptions = record.disruptions;
    const recent = restartsInWindow(record.restartTimes, policy, now);
    if (recent.length) status.recentRestartTimes = recent.map((t) => new Date(t).toISOString());
    if (record.notBefore !== undefined && record.notBefore > now) status.nextRestartTime = new Date(record.notBefore).toISOString();
    if (record.lastFailure) status.lastFailure = record.lastFailure;
    const message = extra.message ?? record.failed ?? (drain && `draining: ${drain}; replaced surge-first by the rollout`);
    if (message) status.message = message;
    const plan: GroupPlan = {
      actions, events, status, state,
      ready: state === 'Ready',
      failed: state === 'Failed',
      upToDate: extra.upToDate ?? (record.revision === input.revision && drain === undefined),
    };
    if (wakeAt !== undefined && Number.isFinite(wakeAt)) plan.wakeAt = wakeAt;
    return plan;
  };

  if (state === 'Failed') {
    const deletes = podDeletions(current, input);
    actions.push(...deletes.actions);
    wake(deletes.wakeAt);
    if (record.failedAt !== undefined) wake(record.failedAt + ms(policy.restartWindowSeconds));
    else writeRecord({ ...record, failedAt: now });
    return finish();
  }

  const detected = detectFailure(state, current, input);
  wake(detected.wakeAt);
  if (detected.failure) {
    const failure = detected.failure;
    const deletes = podDeletions(current, input);
    actions.push(...deletes.actions);
    if (!upToDateRevision) {
      // No spec of the old revision is kept, so an outdated group is never recreated: the rollout replaces it.
      return finish({ message: `${failure.reason}: ${failure.message}; replaced by the rollout`, upToDate: false });
    }
    return recreate(failure);
  }

  if (state === 'BackingOff') {
    wake(record.notBefore);
    return finish({ message: `back-off until ${new Date(record.notBefore!).toISOString()}` });
  }
  if (state === 'Terminating') return finish({ message: `waiting for ${stale.length} pod(s) of an older epoch to terminate` });

  if (state === 'Creating') {
    if (!upToDateRevision) return finish({ upToDate: false });
    const present = new Set(current.map(podIndex));
    // The incarnation's PodGroup is applied before its pods are created (they wait for it).
    if (present.size === 0 && usesPodGroups(bd.spec)) actions.push({ kind: 'applyPodGroup', podGroup: desiredPodGroup(bd, record.index, record.epoch) });
    for (let index = 0; index < shape.pods; index++) {
      if (present.has(index)) continue;
      const pod = desiredGroupPod({ bd, group: record.index, pod: index, epoch: record.epoch, revision: record.revision, clusterDomain: input.clusterDomain });
      actions.push({ kind: 'createPod', pod });
    }
    // Gated by the operator (SchedulingGates); otherwise released at once, to the scheduler or to Kueue's own gate.
    move(isGangGated(bd.spec) ? 'PodsCreated' : 'Released');
    return finish();
  }
  if (state === 'Gated') {
    const ungate = (pod: V1Pod, domain?: { key: string; value: string }): Write =>
      ({ kind: 'ungatePod', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '', gateIndex: ownGateIndex(pod), ...(domain ? { domain } : {}) });
    if (input.place) {
      // A domain with room for the whole group, from every pod and node of the cluster and the domains already
      // reserved for other groups; all pods are released into it at once (those an earlier, partly failed
      // release left gated, into the domain it chose). Waiting for room holds no GPU and is not a failure.
      const pinned = current.map(pinnedDomain).find((d) => d !== undefined);
      const fit = pinned ? { domain: pinned.value } : input.place(record.index, record.epoch);
      if ('waiting' in fit) {
        wake(now + PLACEMENT_RETRY_MS);
        return finish({ message: `waiting for room: ${fit.waiting}` });
      }
      actions.push(...current.filter(isGated).map((pod) => ungate(pod, { key: bd.spec.placement.topologyKey, value: fit.domain })));
      move('Released');
      return finish();
    }
    // Leader first (as LeaderWorkerSet), without a view of the cluster: pod 0 is scheduled on its own, wherever the scheduler
    // finds room; the others follow it into its domain (pod affinity) once it is bound. No pod holds GPUs before pod 0 does.
    const leader = current.find((p) => podIndex(p) === 0)!;
    if (isGated(leader)) {
      actions.push(ungate(leader));
      return finish({ message: 'releasing pod 0 first; the others follow it once it is bound' });
    }
    if (!leader.spec?.nodeName) {
      const problem = schedulingProblem([leader]);
      return finish({ message: `waiting for pod 0 to be scheduled before releasing the others${problem ? `: ${problem}` : ''}` });
    }
    actions.push(...current.filter(isGated).map((p) => ungate(p)));
    move('Released');
    return finish();
  }
  if (state === 'Scheduling') {
    const problem = schedulingProblem(current);
    return finish(problem ? { message: `waiting for the scheduler: ${problem}` } : {});
  }
  if (state === 'Starting' && current.every(isReady)) {
    writeRecord({ ...record, readySince: now });
    move('AllReady');
    events.push({ type: 'Normal', reason: 'GroupReady', message: `group ${record.index} epoch ${record.epoch}: all ${shape.pods} pod(s), ${shape.ranks} ranks, ready` });
  }
  return finish();

  /**
   * The group-ready readiness gate of each live pod follows the group: True once the group is Ready
   * with every pod ready, False as soon as one is not (a missing condition already counts as False).
   */
  function readinessGates(): void {
    if (!isLive(state)) return;
    const ready = state === 'Ready' && current.every(isReady);
    const message = ready ? `all ${shape.pods} pods of group ${record.index} are ready` : `not every pod of group ${record.index} is ready`;
    for (const pod of current) {
      if (!hasGroupGate(pod) || isTerminating(pod)) continue;
      const now = groupReadyCondition(pod);
      if (ready ? now !== 'True' : now === 'True') actions.push({ kind: 'setGroupReady', name: pod.metadata?.name ?? '', ready, message });
    }
  }

  /** Tears the incarnation down for a new one, charged to the budget if the workload failed, else after the disruption back-off. */
  function recreate(failure: GroupFailure): GroupPlan {
    const workload = (failure.class ?? 'Workload') === 'Workload';
    const recent = restartsInWindow(workload ? record.restartTimes : record.disruptionTimes, policy, now);
    if (workload && recent.length >= policy.maxGroupRestarts) {
      const reason = `${failure.reason}: ${failure.message}; gave up after ${recent.length} restarts within ${policy.restartWindowSeconds}s (maxGroupRestarts=${policy.maxGroupRestarts}); retried at ${new Date(now + ms(policy.restartWindowSeconds)).toISOString()}`;
      const next: GroupRecord = { ...record, restartTimes: recent, lastFailure: failure, failed: reason, failedAt: now };
      delete next.notBefore;
      writeRecord(next);
      move('BudgetExhausted');
      wake(now + ms(policy.restartWindowSeconds));
      events.push({ type: 'Warning', reason: 'GroupFailed', message: `group ${record.index}: ${reason}` });
      return finish();
    }
    const times = [...recent, now];
    const previousEpoch = record.epoch;
    const counted = workload ? { restarts: record.restarts + 1, restartTimes: times } : { disruptions: record.disruptions + 1, disruptionTimes: times };
    writeRecord({ ...nextIncarnation(record), ...counted, notBefore: now + backoffMs(times.length, policy), lastFailure: failure });
    move(workload ? 'WorkloadFailure' : 'Disruption');
    wake(record.notBefore);
    const charge = workload ? `restart ${times.length}/${policy.maxGroupRestarts} in window` : 'a disruption, not charged to maxGroupRestarts';
    events.push({
      type: workload ? 'Warning' : 'Normal',
      reason: workload ? 'GroupRestarting' : 'GroupDisrupted',
      message: `group ${record.index}: ${failure.reason}: ${failure.message}; recreating the whole group (epoch ${previousEpoch} -> ${record.epoch}, ${charge})`,
    });
    return finish();
  }
}
