import { describe, expect, it } from 'vitest';
import { isoAt, sleepOn } from '../../src/lib/clock.js';
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
