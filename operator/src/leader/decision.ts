// Pure leader-election decisions on a coordination.k8s.io/v1 Lease, following
// client-go's tools/leaderelection (tryAcquireOrRenew, release):
//
// - A lease is free when its holderIdentity is empty, or when it has not
//   changed for leaseDurationSeconds as observed on the LOCAL clock (the time
//   this candidate last saw the record change). The renewTime written by the
//   holder is never compared with the local clock, so clock skew between
//   nodes cannot make a live lease look expired.
// - The holder renews by writing a new renewTime; a candidate takes over a
//   free lease and increments leaseTransitions.
// - On graceful shutdown the holder releases: empty holderIdentity and a
//   1-second duration, so a standby takes over at once.
//
// No I/O here: the LeaderElector (lease.ts) reads and writes the Lease.

/** The leader-election fields of a Lease's spec, times in epoch milliseconds. */
export interface LeaseRecord {
  /** "" when the lease is free. */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: number;
  renewTime?: number;
  leaseTransitions: number;
}

/** What a candidate last saw of the lease, and when (local clock). */
export interface Observation {
  record: LeaseRecord;
  /** Local time (epoch ms) at which `record` was first seen in its current form. */
  observedAt: number;
}

export type Decision =
  /** The lease does not exist: create it with `record`. */
  | { action: 'create'; record: LeaseRecord }
  /** Write `record` over the current lease (renew, or take over when `acquired`). */
  | { action: 'update'; record: LeaseRecord; acquired: boolean }
  /** Someone else holds a valid lease: do nothing until it expires. */
  | { action: 'wait'; holder: string; expiresAt: number };

export interface DecideInput {
  /** The lease as read now; null when it does not exist. */
  current: LeaseRecord | null;
  /** The observation carried over from the previous attempt, if any. */
  observation: Observation | undefined;
  identity: string;
  leaseDurationSeconds: number;
  /** Local time, epoch ms. */
  now: number;
}

export interface DecideResult {
  decision: Decision;
  /** The observation to carry into the next attempt (before the write). */
  observation: Observation | undefined;
}

/** True when two records are the same version of the lease (client-go compares raw records). */
export function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/** Updates the observation: its clock restarts only when the record changed. */
export function observe(prev: Observation | undefined, current: LeaseRecord, now: number): Observation {
  if (prev && sameRecord(prev.record, current)) return prev;
  return { record: current, observedAt: now };
}

/** Local time at which an observed lease expires, unless it changes before. */
export function expiresAt(obs: Observation): number {
  return obs.observedAt + obs.record.leaseDurationSeconds * 1000;
}

/** client-go isLeaseValid: observedTime + leaseDuration is after now. */
export function isLeaseValid(obs: Observation, now: number): boolean {
  return expiresAt(obs) > now;
}

/** One step of client-go's tryAcquireOrRenew, without the I/O. */
export function decide(input: DecideInput): DecideResult {
  const { current, identity, leaseDurationSeconds, now } = input;
  if (current === null) {
    return {
      decision: {
        action: 'create',
        record: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      },
      observation: input.observation,
    };
  }
  const observation = observe(input.observation, current, now);
  const heldByUs = current.holderIdentity === identity;
  if (current.holderIdentity !== '' && !heldByUs && isLeaseValid(observation, now)) {
    return { decision: { action: 'wait', holder: current.holderIdentity, expiresAt: expiresAt(observation) }, observation };
  }
  const record: LeaseRecord = heldByUs
    ? { ...current, leaseDurationSeconds, renewTime: now, acquireTime: current.acquireTime ?? now }
    : {
        holderIdentity: identity,
        leaseDurationSeconds,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: current.leaseTransitions + 1,
      };
  return { decision: { action: 'update', record, acquired: !heldByUs }, observation };
}

/**
 * The record a holder writes on graceful shutdown (client-go release()): no
 * holder, a 1-second duration, transitions unchanged. Returns null when
 * `current` is not held by `identity` (nothing to release).
 */
export function releaseRecord(current: LeaseRecord, identity: string, now: number): LeaseRecord | null {
  if (current.holderIdentity !== identity || identity === '') return null;
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTime: now,
    renewTime: now,
    leaseTransitions: current.leaseTransitions,
  };
}

export interface Timing {
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

/** client-go's jitter factor on the retry period. */
export const JITTER_FACTOR = 1.2;

/** Checks client-go's constraints: leaseDuration > renewDeadline > retryPeriod * 1.2. Throws on violation. */
export function validateTiming(t: Timing): void {
  const positive = (v: number, name: string) => {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  };
  positive(t.leaseDurationSeconds, 'leaseDurationSeconds');
  positive(t.renewDeadlineSeconds, 'renewDeadlineSeconds');
  positive(t.retryPeriodSeconds, 'retryPeriodSeconds');
  if (!Number.isInteger(t.leaseDurationSeconds)) {
    throw new Error(`leaseDurationSeconds must be an integer (Lease spec is int32), got ${t.leaseDurationSeconds}`);
  }
  if (t.leaseDurationSeconds <= t.renewDeadlineSeconds) {
    throw new Error(
      `leaseDurationSeconds (${t.leaseDurationSeconds}) must be greater than renewDeadlineSeconds (${t.renewDeadlineSeconds})`,
    );
  }
  if (t.renewDeadlineSeconds <= JITTER_FACTOR * t.retryPeriodSeconds) {
    throw new Error(
      `renewDeadlineSeconds (${t.renewDeadlineSeconds}) must be greater than ${JITTER_FACTOR} x retryPeriodSeconds (${t.retryPeriodSeconds})`,
    );
  }
}

/** client-go wait.Jitter(retryPeriod, 1.2): a delay in [period, period * 2.2). */
export function jitteredDelayMs(retryPeriodSeconds: number, random: number): number {
  return retryPeriodSeconds * 1000 * (1 + JITTER_FACTOR * random);
}
