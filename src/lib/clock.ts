// The one clock interface outside the Raft core: system time in production, simulated time in tests.

export interface Clock {
  nowMs(): number;
  setTimeout(fn: () => void, delayMs: number): { cancel(): void };
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  },
};
