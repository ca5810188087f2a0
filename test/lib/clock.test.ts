import { describe, expect, it } from 'vitest';
import { isoAt, LocalDueTimes, nextDueMs, setIntervalOn, sleepOn, type Clock, type Timer } from '../../src/lib/clock.js';
import { ManualClock } from '../support/manual-clock.js';

describe('isoAt', () => {
  it('is Date#toISOString for any time, whether or not it was the last one given', () => {
    for (const ms of [0, 0, 1_700_000_000_123, 1_700_000_000_123, 1_700_000_000_124, 0, 86_400_000]) {
      expect(isoAt(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('throws for a time that is not one, as toISOString does, even twice in a row', () => {
    expect(() => isoAt(Number.NaN)).toThrow(RangeError);
    expect(() => isoAt(Number.NaN)).toThrow(RangeError);
  });
});

describe('sleepOn', () => {
  it('resolves when its delay has passed on the clock, or as soon as the signal aborts', async () => {
    const clock = new ManualClock();
    let slept = false;
    const sleeping = sleepOn(clock, 100).then(() => (slept = true));
    clock.advance(99);
    await Promise.resolve();
    expect(slept).toBe(false);
    clock.advance(1);
    await sleeping;
    const abort = new AbortController();
    const cut = sleepOn(clock, 100, abort.signal);
    abort.abort();
    await cut;
    expect(clock.nextDelayMs()).toBeNull(); // the timer went with the sleep
  });

  it('resolves at once, setting no timer, for a signal that aborted before the sleep began', async () => {
    const clock = new ManualClock();
    const abort = new AbortController();
    abort.abort();
    await sleepOn(clock, 60_000, abort.signal);
    expect(clock.nextDelayMs()).toBeNull();
  });
});

/**
 * A Clock whose readings a test sets and whose timers it fires by hand: nothing moves unless the test says so, so a
 * reading can jump back or forward as an NTP step makes Date.now() (and a broken monotonic source) do.
 */
class JumpingClock implements Clock {
  readingMs = 1_000_000;
  readonly delaysMs: number[] = [];
  private pending: (() => void) | null = null;

  nowMs(): number {
    return this.readingMs;
  }

  monoMs(): number {
    return this.readingMs;
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    this.delaysMs.push(delayMs);
    this.pending = fn;
    return { cancel: () => (this.pending = null) };
  }

  /** Fires the timer set last, at the reading given. */
  fireAt(readingMs: number): void {
    const fn = this.pending;
    this.pending = null;
    this.readingMs = readingMs;
    fn?.();
  }
}

describe('setIntervalOn', () => {
  it('calls fn every interval, each due one interval after the last was due, not after it ran', () => {
    const clock = new ManualClock();
    let calls = 0;
    const timer = setIntervalOn(clock, () => calls++, 100);
    clock.advance(100);
    expect(calls).toBe(1);
    expect(clock.nextDelayMs()).toBe(100);
    clock.advance(130); // the second call ran 30 ms late: the third is still due at 300
    expect(calls).toBe(2);
    expect(clock.nextDelayMs()).toBe(70);
    timer.cancel();
    expect(clock.nextDelayMs()).toBeNull();
  });

  it('never sets its next timer more than one interval out, however far back the clock goes', () => {
    const clock = new JumpingClock();
    let calls = 0;
    setIntervalOn(clock, () => calls++, 100);
    const start = clock.readingMs;
    clock.fireAt(start + 100);
    clock.fireAt(start + 200 - 600_000); // ten minutes back
    clock.fireAt(start + 300 - 600_000);
    expect(calls).toBe(3);
    expect(clock.delaysMs).toEqual([100, 100, 100, 100]);
  });

  it('does not make up calls in a burst when the clock goes forward, and goes on one interval apart', () => {
    const clock = new JumpingClock();
    let calls = 0;
    setIntervalOn(clock, () => calls++, 100);
    const start = clock.readingMs;
    clock.fireAt(start + 100);
    clock.fireAt(start + 100 + 600_000); // ten minutes forward: one call, not six thousand
    clock.fireAt(start + 200 + 600_000);
    expect(calls).toBe(3);
    expect(clock.delaysMs).toEqual([100, 100, 100, 100]);
  });

  it('is timed on the monotonic reading: a wall-clock step does not move its calls', () => {
    const clock = new ManualClock();
    let calls = 0;
    setIntervalOn(clock, () => calls++, 100);
    clock.advance(50);
    clock.stepWall(-600_000);
    clock.advance(50);
    expect(calls).toBe(1);
    clock.stepWall(1_200_000);
    expect(clock.nextDelayMs()).toBe(100);
    clock.advance(100);
    expect(calls).toBe(2);
  });
});

describe('nextDueMs', () => {
  it('is one interval after the last due time while that is ahead by at most one interval', () => {
    expect(nextDueMs(1000, 1000, 100)).toBe(1100);
    expect(nextDueMs(1000, 1050, 100)).toBe(1100);
  });

  it('is one interval from now once the next due time is past or more than one interval ahead', () => {
    expect(nextDueMs(1000, 1100, 100)).toBe(1200);
    expect(nextDueMs(1000, 5000, 100)).toBe(5100);
    expect(nextDueMs(1000, 999, 100)).toBe(1099);
    expect(nextDueMs(1000, -600_000, 100)).toBe(-599_900);
  });
});

describe('LocalDueTimes', () => {
  it('measures a stored wall time once, then counts on the monotonic reading whatever the wall clock does', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const due = new LocalDueTimes(clock, 10);
    const atMs = clock.nowMs() + 3000;
    expect(due.remainingMs('t', atMs, 5000)).toBe(3000);
    clock.advance(1000);
    clock.stepWall(-600_000);
    expect(due.remainingMs('t', atMs, 5000)).toBe(2000);
    clock.stepWall(1_200_000);
    expect(due.remainingMs('t', atMs, 5000)).toBe(2000);
    clock.advance(2000);
    expect(due.remainingMs('t', atMs, 5000)).toBe(0);
  });

  it('waits no longer than waitMsMax for a time first seen after a step back, and not at all for one past', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const due = new LocalDueTimes(clock, 10);
    clock.stepWall(-600_000);
    expect(due.remainingMs('late', clock.nowMs() + 600_000 + 3000, 5000)).toBe(5000);
    expect(due.remainingMs('past', clock.nowMs() - 1, 5000)).toBe(0);
    // A new time for the same key is measured again; a key forgotten, or pushed out past keysMax, too.
    expect(due.remainingMs('late', clock.nowMs() + 100, 5000)).toBe(100);
    const small = new LocalDueTimes(clock, 1);
    small.remainingMs('a', clock.nowMs() + 100, 5000);
    small.remainingMs('b', clock.nowMs() + 100, 5000);
    expect(small.size).toBe(1);
  });
});
