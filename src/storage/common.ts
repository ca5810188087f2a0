// Rules both storage implementations share: what a save may ask for, which ranges exist, the empty hard state.
import { assert } from '../lib/assert.js';
import { logIndex, term } from '../lib/ids.js';
import type { Entry, HardState } from '../raft/types.js';

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

/**
 * Asserts that `entries` can be saved into a log holding [first, last]: contiguous, starting inside the log or right
 * after it (a fresh log starts at `first`). Returns the last index after the save.
 */
export function checkSave(entries: readonly Entry[], first: number, last: number): number {
  if (entries.length === 0) return last;
  const start = entries[0]!.index;
  assert(start >= first, `saving from index ${start} would rewrite entries before the first index ${first}`);
  assert(start <= last + 1, `saving from index ${start} leaves a gap after the last index ${last}`);
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i]!.index === start + i, `the entries to save are not contiguous at index ${start + i}`);
  }
  return start + entries.length - 1;
}

export function checkRange(lo: number, hi: number, first: number, last: number): void {
  assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), `range [${lo}, ${hi}) is not made of integers`);
  assert(lo <= hi, `range [${lo}, ${hi}) is reversed`);
  if (lo === hi) return;
  assert(lo >= first && hi <= last + 1, `range [${lo}, ${hi}) is outside the stored log [${first}, ${last}]`);
}
