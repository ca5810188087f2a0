import { describe, expect, it } from 'vitest';
import { isoAt } from '../../src/lib/clock.js';

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
