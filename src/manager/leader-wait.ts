// How long a write or linearizable read that no leader has taken waits for one before it answers 503 NO_LEADER: the
// rule README states under Errors (503). Its answer must reach the client before the client's own deadline, on a
// loaded host too, or the client reports the outcome unknown and does not try another manager.

/** It gives up after this share of the time it had when it began to wait; the rest is the answer's margin. */
export const leaderWaitShare = 0.5;
/** With no leader known, it waits at most this many election timeouts: a healthy cluster elects one well within. */
export const leaderWaitElectionTimeouts = 4;

/**
 * Whether a request that began to wait at startedMs (deadline deadlineMs, both on Clock.monoMs) and that no leader
 * took yet answers NO_LEADER at nowMs: at half of its time, or once it waited four election timeouts while no leader
 * is known now, whichever comes first.
 */
export function leaderWaitOver(startedMs: number, deadlineMs: number, nowMs: number, leaderKnown: boolean, electionTimeoutMs: number): boolean {
  if (nowMs >= deadlineMs || nowMs >= startedMs + (deadlineMs - startedMs) * leaderWaitShare) return true;
  return !leaderKnown && nowMs >= startedMs + leaderWaitElectionTimeouts * electionTimeoutMs;
}
