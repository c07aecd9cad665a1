// Leader election on a coordination.k8s.io/v1 Lease, with client-go's
// semantics (tools/leaderelection): acquire when the lease is free or expired
// as observed locally, renew every retryPeriod, give up leading when a renew
// has not succeeded within renewDeadline, and release on graceful shutdown so
// a standby takes over at once. Every write is a replace with the
// resourceVersion last read, so two candidates can never both win (409 =>
// retry). The decisions live in decision.ts (pure); this file is the loop.
import type { KubeConfig } from '@kubernetes/client-node';
import { decide, jitteredDelayMs, releaseRecord, validateTiming, type Observation } from './decision.js';
import { ConflictError, KubeLeaseClient, type LeaseClient, type StoredLease } from './lease-client.js';

/** The subset of a winston Logger used here. */
export interface LeaderLogger {
  debug(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  error(message: string, meta?: Record<string, unknown>): unknown;
}

/** Time source; injectable for tests. `sleep` resolves early (never rejects) when `signal` aborts. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface LeaderElectorOptions {
  /** Used to build the Lease client; not needed when `client` is given. */
  kubeConfig?: KubeConfig;
  /** Namespace of the Lease (the operator's own: POD_NAMESPACE). */
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate's identity (the pod name: POD_NAME). Must be unique among candidates. */
  identity: string;
  /** How long a lease is valid without renewal, as seen by the other candidates. Default 15. */
  leaseDurationSeconds?: number;
  /**
   * How long the leader retries a failing renew before it stops leading.
   * Default 10, or 2/3 of a lease duration shorter than 15.
   */
  renewDeadlineSeconds?: number;
  /** Pause between attempts (jittered by up to 1.2x while acquiring). Default 2, or renewDeadline / 5 if smaller. */
  retryPeriodSeconds?: number;
  /**
   * Called once the lease is acquired; the lease is renewed while it runs.
   * `signal` aborts when leadership ends: stop reconciling then. If it throws
   * or rejects while still leading, this candidate stops leading
   * (onStoppedLeading), releases the lease so a standby takes over at once,
   * and run() rejects with that error: a leader whose work failed to start
   * never keeps the lease.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called (awaited) once leadership ends, before the lease is released. */
  onStoppedLeading: () => void | Promise<void>;
  /** Called when the observed holder changes (including to this candidate). */
  onNewLeader?: (identity: string) => void;
  log?: LeaderLogger;
  /** Overrides the Lease client built from kubeConfig (tests). */
  client?: LeaseClient;
  clock?: Clock;
  /** Random source in [0, 1) for the jitter (tests). */
  random?: () => number;
}

const silentLogger: LeaderLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    }),
};

/** Rejects as soon as `signal` aborts, even if `p` never settles (a hung request). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted: request deadline or shutdown'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * A signal for one attempt: aborts on `stop` or after `ms`. Call done() after
 * the attempt so no listener or timer outlives it (AbortSignal.any on a
 * long-lived signal is avoided on purpose).
 */
function attemptSignal(stop: AbortSignal, ms: number): { signal: AbortSignal; done: () => void } {
  const ctl = new AbortController();
  const onStop = () => ctl.abort();
  stop.addEventListener('abort', onStop, { once: true });
  if (stop.aborted) ctl.abort();
  const timer = setTimeout(() => ctl.abort(), ms);
  timer.unref?.();
  return {
    signal: ctl.signal,
    done: () => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class LeaderElector {
  private readonly client: LeaseClient;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: LeaderLogger;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodSeconds: number;

  private readonly stopController = new AbortController();
  private leadingController: AbortController | undefined;
  private running: Promise<void> | undefined;
  private releaseRequested = false;
  /** Boxed: a falsy value may be thrown too. */
  private startError: { error: unknown } | undefined;
  private leading = false;
  private observation: Observation | undefined;
  /** The lease as last written or read by this candidate. */
  private lastLease: StoredLease | undefined;
  private reportedLeader = '';

  constructor(private readonly opts: LeaderElectorOptions) {
    // client-go's defaults (15/10/2), scaled down for a shorter lease so a
    // lone --lease-duration stays valid.
    this.leaseDurationSeconds = opts.leaseDurationSeconds ?? 15;
    const renewDeadlineSeconds = opts.renewDeadlineSeconds ?? Math.min(10, (this.leaseDurationSeconds * 2) / 3);
    this.retryPeriodSeconds = opts.retryPeriodSeconds ?? Math.min(2, renewDeadlineSeconds / 5);
    validateTiming({
      leaseDurationSeconds: this.leaseDurationSeconds,
      renewDeadlineSeconds,
      retryPeriodSeconds: this.retryPeriodSeconds,
    });
    if (!opts.identity) throw new Error('LeaderElector: identity must not be empty');
    if (!opts.namespace || !opts.name) throw new Error('LeaderElector: namespace and name are required');
    this.renewDeadlineMs = renewDeadlineSeconds * 1000;
    if (opts.client) this.client = opts.client;
    else if (opts.kubeConfig) this.client = new KubeLeaseClient(opts.kubeConfig, opts.namespace, opts.name);
    else throw new Error('LeaderElector: kubeConfig or client is required');
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? silentLogger;
  }

  /** True between onStartedLeading and onStoppedLeading. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last observed ("" when unknown or free). */
  getLeader(): string {
    return this.observation?.record.holderIdentity ?? '';
  }

  /**
   * Campaigns until the lease is acquired, then renews it until leadership is
   * lost or release() is called. Resolves after onStoppedLeading (and the
   * release, if requested); never rejects for API errors, only with the
   * error of a failed onStartedLeading (after releasing). Call it once.
   */
  run(): Promise<void> {
    if (this.running) throw new Error('LeaderElector.run() was already called');
    this.running = this.loop();
    return this.running;
  }

  /**
   * Graceful shutdown: stops campaigning or renewing, ends leading
   * (onStoppedLeading), then, if this candidate holds the lease, clears its
   * holder so a standby takes over at once. Resolves when done.
   */
  async release(): Promise<void> {
    this.releaseRequested = true;
    this.stopController.abort();
    if (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    const stop = this.stopController.signal;
    const lease = `${this.opts.namespace}/${this.opts.name}`;
    try {
      this.log.info('leader election: campaigning', { lease, identity: this.opts.identity });
      if (!(await this.acquire(stop))) return;
      this.leading = true;
      this.leadingController = new AbortController();
      this.log.info('leader election: acquired lease, leading', { lease, identity: this.opts.identity });
      const leadingSignal = this.leadingController.signal;
      void Promise.resolve()
        .then(() => this.opts.onStartedLeading(leadingSignal))
        .catch((err: unknown) => this.startFailed(err, leadingSignal));
      await this.renew(stop);
      if (!stop.aborted) this.log.warn('leader election: lost the lease, stopping leading', { lease });
    } finally {
      if (this.leading) {
        this.leading = false;
        this.leadingController?.abort();
        try {
          await this.opts.onStoppedLeading();
        } catch (err) {
          this.log.error('leader election: onStoppedLeading failed', { error: errorText(err) });
        }
      }
      if (this.releaseRequested) await this.releaseLease();
    }
    if (this.startError) throw this.startError.error;
  }

  /** A failure once leadership has ended (e.g. a start cut short by shutdown) is only logged. */
  private startFailed(error: unknown, leadingSignal: AbortSignal): void {
    if (leadingSignal.aborted) {
      this.log.warn('leader election: onStartedLeading failed after leadership ended', { error: errorText(error) });
      return;
    }
    this.log.error('leader election: onStartedLeading failed; stopping leading and releasing the lease', { error: errorText(error) });
    this.startError = { error };
    this.releaseRequested = true;
    this.stopController.abort();
  }

  /** client-go acquire(): jittered retries until success; false when stopped. */
  private async acquire(stop: AbortSignal): Promise<boolean> {
    while (!stop.aborted) {
      if (await this.tryAcquireOrRenew(stop)) return true;
      await this.clock.sleep(jitteredDelayMs(this.retryPeriodSeconds, this.random()), stop);
    }
    return false;
  }

  /** client-go renew(): every retryPeriod, renew within renewDeadline or give up. */
  private async renew(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      if (!(await this.renewWithinDeadline(stop))) return;
      await this.clock.sleep(this.retryPeriodSeconds * 1000, stop);
    }
  }

  private async renewWithinDeadline(stop: AbortSignal): Promise<boolean> {
    const deadline = this.clock.now() + this.renewDeadlineMs;
    while (!stop.aborted) {
      if (await this.tryAcquireOrRenew(stop, deadline)) return true;
      const left = deadline - this.clock.now();
      if (left <= 0) return false;
      await this.clock.sleep(Math.min(this.retryPeriodSeconds * 1000, left), stop);
    }
    return false;
  }

  /** One attempt; true when this candidate holds the lease afterwards. */
  private async tryAcquireOrRenew(stop: AbortSignal, deadline?: number): Promise<boolean> {
    // Requests get at most what is left of the renew deadline (client-go's
    // timeout context), so a hung request cannot keep a stale leader leading.
    const budget = Math.max(1, (deadline ?? this.clock.now() + this.renewDeadlineMs) - this.clock.now());
    const attempt = attemptSignal(stop, budget);
    try {
      return await this.attempt(stop, attempt.signal);
    } finally {
      attempt.done();
    }
  }

  private async attempt(stop: AbortSignal, signal: AbortSignal): Promise<boolean> {
    let current: StoredLease | null;
    try {
      current = await raceAbort(this.client.get(signal), signal);
    } catch (err) {
      if (!stop.aborted) this.log.warn('leader election: cannot read lease', { error: errorText(err) });
      return false;
    }
    const now = this.clock.now();
    const { decision, observation } = decide({
      current: current?.record ?? null,
      observation: this.observation,
      identity: this.opts.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
      now,
    });
    this.observation = observation;
    if (current) {
      this.lastLease = current;
      this.noteLeader(current.record.holderIdentity);
    }
    if (decision.action === 'wait') {
      this.log.debug('leader election: lease held by another candidate', {
        holder: decision.holder,
        expiresInMs: decision.expiresAt - now,
      });
      return false;
    }
    try {
      const written =
        decision.action === 'create'
          ? await raceAbort(this.client.create(decision.record, signal), signal)
          : await raceAbort(this.client.replace(current as StoredLease, decision.record, signal), signal);
      this.lastLease = written;
      this.observation = { record: written.record, observedAt: this.clock.now() };
      this.noteLeader(written.record.holderIdentity);
      if (decision.action === 'create' || decision.acquired) {
        this.log.info('leader election: took the lease', {
          transitions: written.record.leaseTransitions,
          previousHolder: current?.record.holderIdentity ?? '',
        });
      }
      return true;
    } catch (err) {
      if (err instanceof ConflictError) {
        this.log.debug('leader election: lost a write race, retrying', { error: err.message });
      } else if (!stop.aborted) {
        this.log.warn('leader election: cannot write lease', { action: decision.action, error: errorText(err) });
      }
      return false;
    }
  }

  /**
   * client-go release(): clear the holder if we still hold the lease. Read
   * first: the last renew may have been cut short after the server applied
   * it, leaving a stale resourceVersion here (a 409 would keep the standby
   * waiting a whole lease duration).
   */
  private async releaseLease(): Promise<void> {
    const last = this.lastLease;
    if (!last || !releaseRecord(last.record, this.opts.identity, this.clock.now())) return;
    const attempt = attemptSignal(new AbortController().signal, this.renewDeadlineMs);
    try {
      const current = await raceAbort(this.client.get(attempt.signal), attempt.signal);
      const record = current && releaseRecord(current.record, this.opts.identity, this.clock.now());
      if (!current || !record) return;
      this.lastLease = await raceAbort(this.client.replace(current, record, attempt.signal), attempt.signal);
      this.observation = { record: this.lastLease.record, observedAt: this.clock.now() };
      this.log.info('leader election: released lease', { lease: `${this.opts.namespace}/${this.opts.name}` });
    } catch (err) {
      // 409: someone else wrote it since; it is not ours to clear.
      this.log.warn('leader election: cannot release lease', { error: errorText(err) });
    } finally {
      attempt.done();
    }
  }

  private noteLeader(holder: string): void {
    if (holder === '' || holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    this.log.info('leader election: new leader observed', { leader: holder });
    try {
      this.opts.onNewLeader?.(holder);
    } catch (err) {
      this.log.error('leader election: onNewLeader failed', { error: errorText(err) });
    }
  }
}
