// A Clock that moves only when a test says so: advance(ms) fires what falls due, fireNext() jumps to the next timer,
// stepWall(ms) moves only the wall reading (an NTP step: timers and monoMs do not see it).
import type { Clock } from '../../src/lib/clock.js';
import { waitFor } from './wait.js';

interface Timer {
  at: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  private timers: Timer[] = [];
  private wallOffsetMs = 0;

  constructor(private now = 0) {}

  nowMs(): number {
    return this.now + this.wallOffsetMs;
  }

  monoMs(): number {
    return this.now;
  }

  /** Steps the wall clock by ms (negative: back), as NTP does; nothing falls due. */
  stepWall(ms: number): void {
    this.wallOffsetMs += ms;
  }

  setTimeout(fn: () => void, delayMs: number): { cancel(): void } {
    const timer = { at: this.now + delayMs, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Moves time on by ms and fires every timer that falls due, earliest first. */
  advance(ms: number): void {
    this.now += ms;
    const due = this.live().filter((t) => t.at <= this.now);
    this.timers = this.timers.filter((t) => t.at > this.now && !t.cancelled);
    for (const t of due) t.fn();
  }

  /** How long until the next timer fires; null when none is set. */
  nextDelayMs(): number | null {
    const next = this.live()[0];
    return next === undefined ? null : next.at - this.now;
  }

  /** Waits until a timer is set (an async loop has finished its step), then moves time to it and fires it. */
  async fireNext(): Promise<void> {
    await waitFor('the next timer', () => this.nextDelayMs() !== null);
    const next = this.live()[0]!;
    this.timers = this.timers.filter((t) => t !== next);
    this.now = Math.max(this.now, next.at);
    next.fn();
  }

  private live(): Timer[] {
    return this.timers.filter((t) => !t.cancelled).sort((a, b) => a.at - b.at);
  }
}

/**
 * The system's clock, whose wall reading a test steps (as NTP, or libfaketime rewriting its file, steps a running
 * process's Date.now()) while the monotonic reading and timers run on untouched.
 */
export class WallStepClock implements Clock {
  private wallOffsetMs = 0;

  nowMs(): number {
    return Date.now() + this.wallOffsetMs;
  }

  monoMs(): number {
    return performance.now();
  }

  setTimeout(fn: () => void, delayMs: number): { cancel(): void } {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  }

  /** Steps the wall reading by ms (negative: back). */
  stepWall(ms: number): void {
    this.wallOffsetMs += ms;
  }
}

/**
 * System time plus an offset that only a test moves on: timers run on real time, but a test that needs "later"
 * (a record made before a list was taken, say) steps the clock instead of sleeping until the milliseconds change.
 */
export class SteppedClock implements Clock {
  private offsetMs = 0;

  nowMs(): number {
    return Date.now() + this.offsetMs;
  }

  /** Stepped as nowMs is: the tests step it to stand for time passed, not for a wall-clock step. */
  monoMs(): number {
    return this.nowMs();
  }

  setTimeout(fn: () => void, delayMs: number): { cancel(): void } {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  }

  /** Moves the clock on by ms at once. */
  step(ms: number): void {
    this.offsetMs += ms;
  }
}
