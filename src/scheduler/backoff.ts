// Retry delays: exponential backoff with full jitter (a uniform draw in [0, min(cap, base * 2^(n-1)))), drawn by
// the proposing manager so that the command carries the time and applying it stays deterministic.
import type { Random } from '../lib/random.js';

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

/** The ceiling of the delay before retry number `retry` (1 for the first retry). */
export function backoffCeilingMs(retry: number, o: BackoffOptions): number {
  const exponent = Math.min(Math.max(retry, 1) - 1, 52);
  return Math.min(o.capMs, o.baseMs * 2 ** exponent);
}

/** Full jitter: anywhere in [0, ceiling). `retry` is 1 for the first retry. */
export function backoffDelayMs(retry: number, o: BackoffOptions, random: Random): number {
  return Math.floor(random.next() * backoffCeilingMs(retry, o));
}

/** When a task whose attempt `attempt` just ended may run again (its next attempt is retry number `attempt`). */
export function retryAtMs(nowMs: number, attempt: number, o: BackoffOptions, random: Random): number {
  return nowMs + backoffDelayMs(attempt, o, random);
}
