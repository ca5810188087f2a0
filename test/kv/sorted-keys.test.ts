// SortedKeys behaves like a sorted array of distinct keys, across chunk splits and merges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SortedKeys } from '../../src/kv/sorted-keys.js';

describe('SortedKeys', () => {
  it('with keys mostly growing and removed mostly oldest first (task ids through a state), it still matches the model', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 50 })), { maxLength: 4000 }), (ops) => {
        const s = new SortedKeys();
        const model: string[] = [];
        let next = 0;
        for (const [kind, back] of ops) {
          if (kind < 6) {
            // A new key, sometimes a little below the newest (ids from managers whose clocks differ slightly).
            const key = `t${String(Math.max(0, next - (kind === 0 ? back : 0))).padStart(6, '0')}-${next}`;
            next++;
            s.insert(key);
            model.push(key);
            model.sort();
          } else if (model.length > 0) {
            const i = kind < 9 ? 0 : Math.min(back, model.length - 1);
            expect(s.remove(model[i]!)).toBe(true);
            model.splice(i, 1);
          }
        }
        expect(s.toArray()).toEqual(model);
        expect(s.length).toBe(model.length);
      }),
      { numRuns: 50 },
    );
  });

  it('after any inserts and removes it holds exactly the model set, in order, and iterates from any key', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 3000 }),
        fc.integer({ min: 0, max: 3000 }),
        (ops, probe) => {
          const s = new SortedKeys();
          const model = new Set<string>();
          for (const [add, n] of ops) {
            const key = `k${n}`;
            if (add && !model.has(key)) {
              s.insert(key);
              model.add(key);
            } else if (!add) {
              expect(s.remove(key)).toBe(model.delete(key));
            }
          }
          const sorted = [...model].sort();
          expect(s.toArray()).toEqual(sorted);
          expect(s.length).toBe(sorted.length);
          const start = `k${probe}`;
          expect([...s.from(start)]).toEqual(sorted.filter((k) => k >= start));
          expect([...s.from(start, true)]).toEqual(sorted.filter((k) => k > start));
          expect(SortedKeys.fromSorted(sorted).toArray()).toEqual(sorted);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a duplicate insert (a programmer error)', () => {
    const s = new SortedKeys();
    s.insert('a');
    expect(() => s.insert('a')).toThrow(/already present/);
  });

  it('handles the empty set', () => {
    const s = new SortedKeys();
    expect(s.remove('x')).toBe(false);
    expect([...s.from('')]).toEqual([]);
    expect(SortedKeys.fromSorted([]).length).toBe(0);
  });
});
