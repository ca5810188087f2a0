// The one retry-delay formula: exponential backoff with full jitter (a uniform draw in [0, min(cap, base * 2^(n-1)))).
// Task retries (drawn by the proposing manager, so the command carries the time and applying it stays
// deterministic), the transport's redials and knocks, the worker's registration retries and the API client's retries
// all use it; the proposal resends wait half its ceiling plus full jitter (the ceiling on average), and the
// certificate renewals use its ceiling alone.
import type { Random } from './random.js';

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

/** The ceiling of the delay before retry number `retry` (1 for the first retry). */
export function backoffCeilingMs(retry: number, o: BackoffOptions): number {
  const exponent = Math.min(Math.max(retry, 1) - 1, 52);
  return Math.min(o.capMs, o.baseMs * 2 ** exponent);
}

/** Full jitter, not rounded: draw() (uniform in [0, 1)) times the ceiling, so anywhere in [0, ceiling). */
export function fullJitterMs(retry: number, o: BackoffOptions, draw: () => number): number {
  return draw() * backoffCeilingMs(retry, o);
}

/** Full jitter in whole milliseconds: anywhere in [0, ceiling). `retry` is 1 for the first retry. */
export function backoffDelayMs(retry: number, o: BackoffOptions, random: Random): number {
  return Math.floor(fullJitterMs(retry, o, () => random.next()));
}

/** When a task whose attempt `attempt` just ended may run again (its next attempt is retry number `attempt`). */
export function retryAtMs(nowMs: number, attempt: number, o: BackoffOptions, random: Random): number {
  return nowMs + backoffDelayMs(attempt, o, random);
}
