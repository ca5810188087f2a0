// Retry backoff: exponential ceilings capped, full jitter within [0, ceiling), the time a retry may run.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeededRandom, type Random } from '../../src/lib/random.js';
import { backoffCeilingMs, backoffDelayMs, retryAtMs } from '../../src/lib/backoff.js';

const o = { baseMs: 1000, capMs: 60_000 };
const fixed = (x: number): Random => ({ next: () => x, int: (n) => Math.floor(x * n) });

describe('backoff', () => {
  it('ceilings double from the base per retry and stop at the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffCeilingMs(n, o))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect(backoffCeilingMs(10_000, o)).toBe(60_000);
    expect(backoffCeilingMs(0, o)).toBe(1000);
  });

  it('full jitter: the delay is the draw times the ceiling', () => {
    expect(backoffDelayMs(3, o, fixed(0))).toBe(0);
    expect(backoffDelayMs(3, o, fixed(0.5))).toBe(2000);
    expect(backoffDelayMs(3, o, fixed(0.999999))).toBe(3999);
    expect(retryAtMs(10_000, 2, o, fixed(0.25))).toBe(10_500);
  });

  it('property: every delay lies in [0, ceiling), and a seeded draw repeats exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), (retry, seed) => {
        const a = backoffDelayMs(retry, o, new SeededRandom(seed));
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThan(backoffCeilingMs(retry, o));
        expect(backoffDelayMs(retry, o, new SeededRandom(seed))).toBe(a);
      }),
    );
  });

  it('delays grow on average with the retry number', () => {
    const r = new SeededRandom(7);
    const mean = (retry: number) => Array.from({ length: 2000 }, () => backoffDelayMs(retry, o, r)).reduce((s, x) => s + x, 0) / 2000;
    const [m1, m2, m3] = [mean(1), mean(2), mean(3)];
    expect(m1).toBeGreaterThan(400);
    expect(m1).toBeLessThan(600);
    expect(m2).toBeGreaterThan(m1 * 1.6);
    expect(m3).toBeGreaterThan(m2 * 1.6);
  });
});
