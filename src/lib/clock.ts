// The one clock interface outside the Raft core: system time in production, simulated time in tests (test/sim runs
// the manager's driver on a clock whose timers are events of its one event queue). Two readings, because an NTP step
// moves the wall clock by minutes: durations, timers and liveness are measured on monoMs, and nowMs is only for times
// that are stored or shown (atMs in commands, createdAt, log times).

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall time (ms since the epoch): may step back or forward at any moment. Never subtract two readings for a wait. */
  nowMs(): number;
  /** A monotonic reading in ms from an arbitrary origin: only differences between two readings mean anything. */
  monoMs(): number;
  setTimeout(fn: () => void, delayMs: number): Timer;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monoMs: () => performance.now(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Calls fn every intervalMs on `clock` until cancelled (setInterval on any Clock). Each call is due one interval
 * after the last one was due, not after it ran, so a slightly late timer does not make the ticks drift; calls missed
 * altogether (a stalled event loop) are skipped, not made up in a burst, as setInterval does. Measured on monoMs, and
 * re-based on now whenever the next call would be more than one interval away, so that no clock step can put it off.
 */
export function setIntervalOn(clock: Clock, fn: () => void, intervalMs: number): Timer {
  let dueMs = clock.monoMs() + intervalMs;
  let cancelled = false;
  let current: Timer;
  const fire = (): void => {
    if (cancelled) return;
    const now = clock.monoMs();
    dueMs = nextDueMs(dueMs, now, intervalMs);
    current = clock.setTimeout(fire, dueMs - now);
    fn();
  };
  current = clock.setTimeout(fire, intervalMs);
  return {
    cancel: () => {
      cancelled = true;
      current.cancel();
    },
  };
}

/**
 * When the call after the one due at lastDueMs is due, seen at nowMs: one interval later, unless that is already past
 * (missed calls are skipped) or more than one interval ahead (the clock went back): then one interval from now.
 */
export function nextDueMs(lastDueMs: number, nowMs: number, intervalMs: number): number {
  const dueMs = lastDueMs + intervalMs;
  return dueMs <= nowMs || dueMs - nowMs > intervalMs ? nowMs + intervalMs : dueMs;
}

/** Resolves after delayMs on `clock`, or as soon as `signal` aborts (at once if it already has). */
export function sleepOn(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => clock.setTimeout(resolve, delayMs));
  // An abort event fires once: a loop stopped while it was busy would otherwise sleep the whole delay.
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, delayMs);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Local due times for wall times read from records (a task's notBeforeMs, a rollout's monitorUntilMs): the record
 * keeps its wall time, which is replicated and shown, but this manager waits on its own monotonic reading. The wall
 * distance to a stored time is measured once, the first time it is asked about, clamped to [0, waitMsMax] (a step of
 * the wall clock back since the record was written must not make the wait longer than the one asked for), and from
 * then on counted on monoMs, so that a later step either way moves nothing. Keys are forgotten when asked (forget) or
 * when more than keysMax are held (the oldest first: one measured again later is clamped as before).
 */
export class LocalDueTimes {
  private readonly due = new Map<string, { atMs: number; dueMonoMs: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly keysMax: number,
  ) {}

  /** How long, in ms from now on the monotonic reading, until the stored wall time atMs is due here (0: it is). */
  remainingMs(key: string, atMs: number, waitMsMax: number): number {
    const nowMonoMs = this.clock.monoMs();
    let d = this.due.get(key);
    if (d === undefined || d.atMs !== atMs) {
      const waitMs = Math.min(Math.max(0, atMs - this.clock.nowMs()), Math.max(0, waitMsMax));
      d = { atMs, dueMonoMs: nowMonoMs + waitMs };
      this.due.delete(key);
      if (this.due.size >= this.keysMax) this.due.delete(this.due.keys().next().value!);
      this.due.set(key, d);
    }
    return Math.max(0, d.dueMonoMs - nowMonoMs);
  }

  /** The stored time last measured for key, and how long until it is due here (0: it is); undefined: none. */
  pending(key: string): { atMs: number; remainingMs: number } | undefined {
    const d = this.due.get(key);
    return d === undefined ? undefined : { atMs: d.atMs, remainingMs: Math.max(0, d.dueMonoMs - this.clock.monoMs()) };
  }

  forget(key: string): void {
    this.due.delete(key);
  }

  clear(): void {
    this.due.clear();
  }

  get size(): number {
    return this.due.size;
  }
}

let lastIsoMs = Number.NaN;
let lastIso = '';

/**
 * Date#toISOString, remembered for the last time given: a command's changes all carry its one atMs, and the entries
 * applied in one millisecond share their audit lines' time.
 */
export function isoAt(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}
