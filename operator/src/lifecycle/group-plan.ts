/**
 * The pure life of one tensor-parallel group: given its record, its pods and the nodes,
 * decide the writes that move it one step on, and report its status. A group is an
 * all-or-nothing unit: a fault of any pod (any of its ranks) bumps the epoch and tears every pod down,
 * and the new incarnation starts only when no pod of an older epoch is left.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment, GroupFailure, GroupPhase, GroupStatus } from '../api/types.js';
import { desiredGroupPod } from '../groups/pod.js';
import { LABELS, groupEpochSelector } from '../groups/labels.js';
import { groupServiceName, masterAddress } from '../groups/names.js';
import { groupShape } from '../groups/shape.js';
import type { EventSpec, Write } from './actions.js';
import { backoffMs, restartsInWindow } from './backoff.js';
import { recordAnnotations, type GroupRecord } from './group-record.js';
import type { DomainPicker } from './placement.js';
import { isGated, isReady, isTerminating, notReadySince, ownGateIndex, podEpoch, podFault, podIndex, unschedulableSince, type NodeViews } from './observe.js';

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
  /** Chooses the topology domain of a new incarnation. */
  picker: DomainPicker;
}

export interface GroupPlan {
  actions: Write[];
  events: EventSpec[];
  status: GroupStatus;
  /** Reconcile again at this time (ms) at the latest: back-off end, a timeout that may fire. */
  wakeAt?: number;
  ready: boolean;
  failed: boolean;
  /** Runs the current revision on schedulable nodes, so the rollout keeps it. */
  upToDate: boolean;
}

const ms = (seconds: number) => seconds * 1000;

function failureOf(reason: string, message: string, now: number, pod?: number): GroupFailure {
  const failure: GroupFailure = { reason, message, time: new Date(now).toISOString() };
  if (pod !== undefined) failure.pod = pod;
  return failure;
}

/** Deletes of pods that must go: any not yet terminating, and terminating ones stuck on a lost node past the grace. */
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
    const nodeName = pod.spec?.nodeName;
    const node = nodeName ? input.nodes?.get(nodeName) : undefined;
    const nodeLost = input.nodes !== undefined && nodeName !== undefined && (!node || !node.ready);
    if (!nodeLost) continue;
    const since = Math.max(new Date(pod.metadata!.deletionTimestamp!).getTime(), node?.since ?? 0);
    if (input.now - since >= grace) actions.push({ kind: 'deletePod', name, uid, force: true });
    else wakeAt = Math.min(wakeAt ?? Infinity, since + grace);
  }
  return wakeAt === undefined ? { actions } : { actions, wakeAt };
}

/** The first reason the current incarnation cannot go on, with the time a pending timeout would fire. */
function detectFailure(current: readonly V1Pod[], input: GroupPlanInput): { failure?: GroupFailure; wakeAt?: number } {
  const { record, now, bd } = input;
  const policy = bd.spec.failurePolicy;
  const { pods } = groupShape(bd.spec);
  for (const pod of [...current].sort((a, b) => podIndex(a) - podIndex(b))) {
    const fault = podFault(pod, input.nodes);
    if (fault) return { failure: failureOf(fault.reason, fault.message, now, podIndex(pod)) };
  }
  const released = current.some((p) => !isGated(p));
  const present = new Set(current.map(podIndex));
  if (released && present.size < pods) {
    const missing = [...Array(pods).keys()].find((i) => !present.has(i))!;
    return { failure: failureOf('RankDeleted', `pod ${missing} of epoch ${record.epoch} disappeared`, now, missing) };
  }
  if (current.length === 0) return {};
  if (record.readySince !== undefined) {
    let wakeAt: number | undefined;
    for (const pod of current) {
      const since = notReadySince(pod);
      if (since === undefined) continue;
      const deadline = since + ms(policy.readinessLossSeconds);
      if (now >= deadline) {
        return { failure: failureOf('ReadinessLost', `pod ${pod.metadata?.name} not ready for ${policy.readinessLossSeconds}s`, now, podIndex(pod)) };
      }
      wakeAt = Math.min(wakeAt ?? Infinity, deadline);
    }
    return wakeAt === undefined ? {} : { wakeAt };
  }
  const bound = current.filter((p) => p.spec?.nodeName);
  const stuck = current.map(unschedulableSince).filter((t): t is number => t !== undefined);
  const pinned = current.some((p) => p.metadata?.labels?.[LABELS.domain] !== undefined);
  if (released && (bound.length > 0 || pinned) && stuck.length > 0) {
    // Ranks pinned next to the bound ones (or to a domain that filled up meanwhile) cannot fit there:
    // only a fresh placement of the whole group helps.
    const deadline = Math.max(...stuck) + ms(policy.placementTimeoutSeconds);
    if (now >= deadline) {
      return { failure: failureOf('PlacementStalled', `${stuck.length} pod(s) unschedulable in the topology domain of the ${bound.length} bound pod(s) for ${policy.placementTimeoutSeconds}s`, now) };
    }
    return { wakeAt: deadline };
  }
  const scheduled = released && current.length === pods && bound.length === pods;
  if (!scheduled) return {};
  const deadline = record.epochStarted + ms(policy.startupTimeoutSeconds);
  if (now >= deadline) {
    return { failure: failureOf('StartupTimeout', `group not ready within startupTimeoutSeconds=${policy.startupTimeoutSeconds}`, now) };
  }
  return { wakeAt: deadline };
}

export function planGroup(input: GroupPlanInput): GroupPlan {
  const { bd, now } = input;
  const policy = bd.spec.failurePolicy;
  const shape = groupShape(bd.spec);
  const name = bd.metadata.name ?? '';
  const actions: Write[] = [];
  const events: EventSpec[] = [];
  let record = { ...input.record };
  let wakeAt: number | undefined;
  const wake = (t: number | undefined) => { if (t !== undefined) wakeAt = Math.min(wakeAt ?? Infinity, t); };
  // One record write per plan, holding the final record: two would carry the same resourceVersion.
  const writeRecord = (next: GroupRecord) => {
    const epochChanged = next.epoch !== input.record.epoch;
    const earlier = actions.findIndex((a) => a.kind === 'patchRecord');
    if (earlier >= 0) actions.splice(earlier, 1);
    actions.push({
      kind: 'patchRecord',
      name: groupServiceName(name, record.index),
      resourceVersion: input.serviceResourceVersion,
      annotations: recordAnnotations(next),
      ...(epochChanged ? { selector: groupEpochSelector(name, next.index, next.epoch) } : {}),
    });
    record = next;
  };
  const upToDateRevision = record.revision === input.revision;

  if (input.resetToken !== undefined && input.resetToken !== record.resetToken) {
    const wasFailed = record.failed !== undefined;
    const next: GroupRecord = { ...record, restartTimes: [], resetToken: input.resetToken };
    delete next.failed;
    delete next.notBefore;
    if (wasFailed) Object.assign(next, { epoch: record.epoch + 1, epochStarted: now });
    if (wasFailed) delete next.readySince;
    if (wasFailed || record.restartTimes.length > 0) {
      events.push({ type: 'Normal', reason: 'GroupReset', message: `group ${record.index}: restart budget reset by annotation` });
    }
    writeRecord(next);
  }

  const current = input.pods.filter((p) => podEpoch(p) === record.epoch);
  const stale = input.pods.filter((p) => podEpoch(p) !== record.epoch);
  const staleDeletes = podDeletions(stale, input);
  actions.push(...staleDeletes.actions);
  wake(staleDeletes.wakeAt);

  const finish = (phase: GroupPhase, extra: { ready?: boolean; message?: string } = {}): GroupPlan => {
    const onCordoned = current.some((p) => p.spec?.nodeName && input.nodes?.get(p.spec.nodeName)?.unschedulable);
    const readyPods = current.filter(isReady).length;
    const status: GroupStatus = {
      index: record.index,
      phase,
      epoch: record.epoch,
      revision: record.revision,
      readyPods,
      readyRanks: readyPods * shape.gpusPerPod,
      restarts: record.restarts,
      leaderAddress: masterAddress(name, record.index, bd.metadata.namespace ?? 'default', input.clusterDomain, shape.pods),
    };
    const recent = restartsInWindow(record.restartTimes, policy, now);
    if (recent.length) status.recentRestartTimes = recent.map((t) => new Date(t).toISOString());
    if (record.notBefore !== undefined && record.notBefore > now) status.nextRestartTime = new Date(record.notBefore).toISOString();
    if (record.lastFailure) status.lastFailure = record.lastFailure;
    const message = extra.message ?? record.failed;
    if (message) status.message = message;
    const plan: GroupPlan = {
      actions, events, status,
      ready: extra.ready ?? false,
      failed: phase === 'Failed',
      upToDate: record.revision === input.revision && !onCordoned,
    };
    if (wakeAt !== undefined && Number.isFinite(wakeAt)) plan.wakeAt = wakeAt;
    return plan;
  };

  if (record.failed !== undefined) {
    const deletes = podDeletions(current, input);
    actions.push(...deletes.actions);
    wake(deletes.wakeAt);
    return finish('Failed');
  }

  const detected = detectFailure(current, input);
  wake(detected.wakeAt);
  if (detected.failure) {
    const failure = detected.failure;
    const deletes = podDeletions(current, input);
    if (!upToDateRevision) {
      // No spec of the old revision is kept, so an outdated group is never recreated: the rollout replaces it.
      actions.push(...deletes.actions);
      return { ...finish('Restarting', { message: `${failure.reason}: ${failure.message}; replaced by the rollout` }), upToDate: false };
    }
    const recent = restartsInWindow(record.restartTimes, policy, now);
    if (recent.length >= policy.maxGroupRestarts) {
      const reason = `${failure.reason}: ${failure.message}; gave up after ${recent.length} restarts within ${policy.restartWindowSeconds}s (maxGroupRestarts=${policy.maxGroupRestarts})`;
      const next: GroupRecord = { ...record, restartTimes: recent, lastFailure: failure, failed: reason };
      delete next.notBefore;
      writeRecord(next);
      actions.push(...deletes.actions);
      events.push({ type: 'Warning', reason: 'GroupFailed', message: `group ${record.index}: ${reason}` });
      return finish('Failed');
    }
    const times = [...recent, now];
    const next: GroupRecord = {
      ...record,
      epoch: record.epoch + 1,
      epochStarted: now,
      restarts: record.restarts + 1,
      restartTimes: times,
      notBefore: now + backoffMs(times.length, policy),
      lastFailure: failure,
    };
    delete next.readySince;
    const previousEpoch = record.epoch;
    writeRecord(next);
    actions.push(...deletes.actions);
    wake(next.notBefore);
    events.push({
      type: 'Warning',
      reason: 'GroupRestarting',
      message: `group ${record.index}: ${failure.reason}: ${failure.message}; recreating the whole group (epoch ${previousEpoch} -> ${next.epoch}, restart ${times.length}/${policy.maxGroupRestarts} in window)`,
    });
    return finish('Restarting');
  }

  if (record.notBefore !== undefined && now < record.notBefore) {
    wake(record.notBefore);
    return finish('Restarting', { message: `back-off until ${new Date(record.notBefore).toISOString()}` });
  }
  if (stale.length > 0) return finish('Restarting', { message: `waiting for ${stale.length} pod(s) of an older epoch to terminate` });

  const present = new Set(current.map(podIndex));
  if (present.size < shape.pods) {
    if (!upToDateRevision) return { ...finish('Pending'), upToDate: false };
    // Pods of one incarnation share its domain: a missing pod joins the existing ones; a fresh incarnation gets one.
    const domain = current.length > 0 ? current[0]!.metadata?.labels?.[LABELS.domain] : input.picker.pick(groupServiceName(name, record.index));
    for (let index = 0; index < shape.pods; index++) {
      if (present.has(index)) continue;
      const pod = desiredGroupPod({ bd, group: record.index, pod: index, epoch: record.epoch, revision: record.revision, clusterDomain: input.clusterDomain, ...(domain === undefined ? {} : { domain }) });
      actions.push({ kind: 'createPod', pod });
    }
    return finish('Pending');
  }
  const gated = current.filter(isGated);
  if (gated.length > 0) {
    for (const pod of gated) actions.push({ kind: 'ungatePod', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '', gateIndex: ownGateIndex(pod) });
    return finish('Pending');
  }
  const ready = current.every(isReady);
  if (ready) {
    if (record.readySince === undefined) {
      writeRecord({ ...record, readySince: now });
      events.push({ type: 'Normal', reason: 'GroupReady', message: `group ${record.index} epoch ${record.epoch}: all ${shape.pods} pod(s), ${shape.ranks} ranks, ready` });
    }
    return finish('Ready', { ready: true });
  }
  const unscheduled = current.some((p) => !p.spec?.nodeName);
  return finish(unscheduled ? 'Pending' : 'Starting');
}
