// The manager's idle collection (src/daemon/gc.ts): once after its applied index stops moving, never while it moves,
// not again while it stays quiet, and again after the next burst.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { compactHeapNow, startIdleCollector } from '../../src/daemon/gc.js';
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

describe('compactHeapNow', () => {
  it('compacts in a node launched with --expose-gc, and changes nothing in one without', () => {
    // In children launched as a manager is: the heap committed after a compacting collection is well under what a
    // plain one leaves, for the same garbage (half-used pages are emptied and given back; 28 against 61 MiB here).
    const heapAfter = (mode: 'plain' | 'compact'): number => {
      const script = `
        const { compactHeapNow } = await import(${JSON.stringify(new URL('../../src/daemon/gc.ts', import.meta.url).href)});
        const { getHeapStatistics } = await import('node:v8');
        // Rounds of objects that live long enough to reach the old generation, a tenth of them kept: half-used pages.
        const keep = [];
        for (let r = 0; r < 4; r++) {
          const round = [];
          for (let i = 0; i < 300000; i++) round.push({ i, s: 'x' + i + r });
          for (let i = 0; i < round.length; i += 10) keep.push(round[i]);
        }
        if (${JSON.stringify(mode)} === 'compact') compactHeapNow(); else gc();
        console.log(getHeapStatistics().total_heap_size, keep.length);
      `;
      const out = execFileSync(process.execPath, ['--expose-gc', '--max-semi-space-size=8', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
      return Number(out.trim().split('\n').at(-1)!.split(' ')[0]);
    };
    const plain = heapAfter('plain');
    const compacted = heapAfter('compact');
    expect(compacted).toBeLessThan(plain * 0.8);
    // Without --expose-gc (this test's own process) it is a no-op.
    compactHeapNow();
  });
});
