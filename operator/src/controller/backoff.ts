import { realClock } from '../leader/lease.js';

/** Capped exponential back-off with jitter in [d/2, d), abortable. */
export class Backoff {
  private failures = 0;

  constructor(private readonly initialMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {}

  reset(): void { this.failures = 0; }

  /** The next delay: initial * 2^failures, capped, jittered. */
  next(): number {
    const base = Math.min(this.initialMs * 2 ** this.failures, this.maxMs);
    this.failures++;
    return Math.round(base * (0.5 + this.random() / 2));
  }

  /** Sleeps for next(); resolves early when the signal aborts. */
  wait(signal: AbortSignal): Promise<void> {
    return realClock.sleep(this.next(), signal);
  }
}
