// The manager's idle collection (src/daemon/gc.ts): once after its applied index stops moving, never while it moves,
// not again while it stays quiet, and again after the next burst.
import { describe, expect, it } from 'vitest';
import { startIdleCollector } from '../../src/daemon/gc.js';
import { ManualClock } from '../support/manual-clock.js';

describe('startIdleCollector', () => {
  it('collects once each time progress stops, one to two checks after it did', () => {
    const clock = new ManualClock();
    let applied = 0;
    let collections = 0;
    const timer = startIdleCollector({ clock, progress: () => applied, collect: () => collections++, checkEveryMs: 1000 });
    const check = (): void => clock.advance(1000);
    // Quiet from the start: nothing moved, nothing to collect.
    check();
    check();
    expect(collections).toBe(0);
    // Busy: every check sees progress.
    for (let i = 0; i < 5; i++) {
      applied += 100;
      check();
    }
    expect(collections).toBe(0);
    // Quiet: the first check that sees none collects, the next ones do not.
    check();
    expect(collections).toBe(1);
    check();
    check();
    expect(collections).toBe(1);
    // Another burst, another collection after it.
    applied += 1;
    check();
    check();
    expect(collections).toBe(2);
    timer.cancel();
    applied += 1;
    check();
    check();
    expect(collections).toBe(2);
  });
});
