/**
 * The life of one group as an explicit state machine. The state is not stored: each reconcile
 * derives it from the durable record (group-record.ts) and the pods (level-triggered, as every
 * controller must be), detects at most one event, and the table below says where that event
 * leads. planGroup (group-plan.ts) then makes the writes that enter the new state. A transition
 * missing from the table is a bug, and planGroup refuses it loudly.
 *
 *   Creating ─PodsCreated→ Gated ─Released→ Scheduling ─Scheduled→ Starting ─AllReady→ Ready
 *   (Gated: every pod is released at once, pinned to a domain with room for the group, once one has room;
 *   without a cluster-wide view pod 0 is released first, the others once it is bound (leader first);
 *   a single-pod group, or gang policy Kueue or PodGroup: Creating ─Released→ Scheduling, where Kueue's gate
 *   or the gang scheduler holds the pods; a pod gone before release: Gated ─PodMissing→ Creating)
 *   any live state ─WorkloadFailure→ BackingOff (charged) | Failed (budget exhausted)
 *   any live state ─Disruption→ BackingOff (not charged; its own back-off)
 *   BackingOff ─BackoffElapsed→ Terminating ─OldEpochGone→ Creating
 *   Failed ─RetryWindowElapsed | Reset→ Terminating
 */
import type { FailureClass, GroupPhase } from '../api/types.js';

export const GROUP_STATES = ['Creating', 'Gated', 'Scheduling', 'Starting', 'Ready', 'BackingOff', 'Terminating', 'Failed'] as const;
export type GroupState = (typeof GROUP_STATES)[number];

export const GROUP_EVENTS = [
  'PodsCreated', 'Released', 'Scheduled', 'AllReady', 'PodMissing',
  'WorkloadFailure', 'Disruption', 'BudgetExhausted',
  'BackoffElapsed', 'OldEpochGone', 'RetryWindowElapsed', 'Reset',
] as const;
export type GroupEvent = (typeof GROUP_EVENTS)[number];

const LIVE = ['Creating', 'Gated', 'Scheduling', 'Starting', 'Ready'] as const;
const failures = { WorkloadFailure: 'BackingOff', Disruption: 'BackingOff', BudgetExhausted: 'Failed' } as const;

/** state → event → next state. */
export const TRANSITIONS: { readonly [S in GroupState]: Readonly<Partial<Record<GroupEvent, GroupState>>> } = {
  // A single-pod group's pod is created ungated: Released straight away.
  Creating: { PodsCreated: 'Gated', Released: 'Scheduling', ...failures },
  Gated: { Released: 'Scheduling', PodMissing: 'Creating', ...failures },
  Scheduling: { Scheduled: 'Starting', PodMissing: 'Creating', ...failures },
  Starting: { AllReady: 'Ready', PodMissing: 'Creating', ...failures },
  Ready: { PodMissing: 'Creating', ...failures },
  BackingOff: { BackoffElapsed: 'Terminating', BudgetExhausted: 'Failed' },
  Terminating: { OldEpochGone: 'Creating', BudgetExhausted: 'Failed' },
  Failed: { RetryWindowElapsed: 'Terminating', Reset: 'Terminating' },
};

export function transition(from: GroupState, event: GroupEvent): GroupState {
  const to = TRANSITIONS[from][event];
  if (to === undefined) throw new Error(`group state machine: no transition from ${from} on ${event}`);
  return to;
}

export const isLive = (s: GroupState): s is (typeof LIVE)[number] => (LIVE as readonly string[]).includes(s);

/** The phase each state reports in status. */
export const PHASE_OF: { readonly [S in GroupState]: GroupPhase } = {
  Creating: 'Pending', Gated: 'Pending', Scheduling: 'Pending', Starting: 'Starting', Ready: 'Ready',
  BackingOff: 'Restarting', Terminating: 'Restarting', Failed: 'Failed',
};

/** Which failures are the workload's (charged to maxGroupRestarts) and which the infrastructure's. */
export const FAILURE_CLASS: Readonly<Record<string, FailureClass>> = {
  RankFailed: 'Workload',
  RankRestarted: 'Workload',
  StartupTimeout: 'Workload',
  ReadinessLost: 'Workload',
  RankEvicted: 'Disruption',
  RankPreempted: 'Disruption',
  RankDeleted: 'Disruption',
  NodeLost: 'Disruption',
  PlacementStalled: 'Disruption',
};
