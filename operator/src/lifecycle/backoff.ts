import type { FailurePolicySpec } from '../api/types.js';

/** Restart times still inside the policy's window. */
export function restartsInWindow(times: readonly number[], policy: FailurePolicySpec, now: number): number[] {
  return times.filter((t) => now - t < policy.restartWindowSeconds * 1000);
}

/** Delay before the n-th recreation inside the window (n >= 1): backoff * 2^(n-1), capped. */
export function backoffMs(n: number, policy: FailurePolicySpec): number {
  return Math.min(policy.backoffSeconds * 2 ** Math.max(0, n - 1), policy.maxBackoffSeconds) * 1000;
}
