// FollowedLines: a followed log picked up again after a cut shows what came after the last lines it showed, found in
// the new stream's tail: nothing twice, nothing lost, as far as those lines tell where it was cut.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { endOfLast, FollowedLines } from '../../src/cli/log-resume.js';
import { limits } from '../../src/lib/limits.js';

const ticks = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `tick ${from + i}`);

describe('FollowedLines', () => {
  it('shows lines as they come until a cut, then holds the new stream and shows only what follows the last line shown', () => {
    const f = new FollowedLines();
    expect(f.take(ticks(1, 6))).toEqual(ticks(1, 6));
    f.cut();
    expect(f.holding).toBe(true);
    // The new stream: the tail (all the runtime keeps), then what is written.
    expect(f.take(ticks(1, 9))).toEqual([]);
    expect(f.take(['tick 10'])).toEqual([]);
    expect(f.settle()).toEqual({ lines: ticks(7, 10), found: true });
    expect(f.holding).toBe(false);
    expect(f.take(['tick 11'])).toEqual(['tick 11']);
  });

  it('a stream cut before any line was shown is not held (its first tail is asked again)', () => {
    const f = new FollowedLines();
    f.cut();
    expect(f.holding).toBe(false);
    expect(f.anyShown).toBe(false);
    expect(f.take(['a'])).toEqual(['a']);
  });

  it('a stream cut again while held drops what it held: the next one brings it again', () => {
    const f = new FollowedLines();
    f.take(ticks(1, 3));
    f.cut();
    f.take(ticks(1, 4));
    f.cut();
    f.take(ticks(1, 5));
    expect(f.settle()).toEqual({ lines: ['tick 4', 'tick 5'], found: true });
  });

  it('output that repeats itself goes on from the newest repeat (nothing shown twice)', () => {
    const f = new FollowedLines();
    f.take(['ok', 'ok', 'ok']);
    f.cut();
    f.take(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(f.settle()).toEqual({ lines: [], found: true });
  });

  it('a tail that no longer holds the lines shown is shown whole, and says so', () => {
    const f = new FollowedLines();
    f.take(ticks(1, 3));
    f.cut();
    f.take(ticks(50, 52));
    expect(f.settle()).toEqual({ lines: ticks(50, 52), found: false });
  });

  it('holds the newest bytes of a long tail: the place looked for is near its end', () => {
    const f = new FollowedLines();
    const long = 'x'.repeat(1000);
    f.take(['mark']);
    f.cut();
    const lines = Array.from({ length: Math.ceil(limits.logResumeHeldBytesMax / 1000) + 100 }, (_, i) => `${i} ${long}`);
    f.take([...lines, 'mark', 'after']);
    expect(f.settle()).toEqual({ lines: ['after'], found: true });
  });

  it('whatever the output and wherever the cuts, lines that are all different are shown each once, in order', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 80 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 200 })), { maxLength: 6 }), (total, cuts) => {
      // The runtime keeps every line; each cut happens after `at` more lines were shown; the next stream asks for `tail`.
      const all = ticks(1, total);
      const f = new FollowedLines();
      const out: string[] = [];
      let written = Math.min(total, 1);
      out.push(...f.take(all.slice(0, written)));
      for (const [more, tail] of cuts) {
        f.cut();
        written = Math.min(total, written + more);
        // The tail reaches back at least to the last lines shown remembered (a resumed stream asks for all there is).
        const fromIndex = Math.max(0, Math.min(written - tail, out.length - limits.logResumeLinesMax));
        f.take(all.slice(fromIndex, written));
        out.push(...f.settle().lines);
      }
      out.push(...f.take(all.slice(written)));
      expect(out).toEqual(all);
    }));
  });
});

describe('endOfLast', () => {
  it('is where the last occurrence ends, or -1', () => {
    expect(endOfLast(['a', 'b'], ['a', 'b', 'c', 'a', 'b', 'd'])).toBe(5);
    expect(endOfLast(['a', 'b'], ['a', 'c'])).toBe(-1);
    expect(endOfLast(['a'], [])).toBe(-1);
    expect(endOfLast([], ['a'])).toBe(-1);
  });
});
