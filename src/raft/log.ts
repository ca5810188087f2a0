// The in-memory Raft log: entries from `offset` on (the ones before were compacted into a snapshot, or restored from
// one), a stable prefix (on disk) and an unstable suffix (handed out in Ready), the commit and applied indexes, and
// where the config entries are. Terms in a log never decrease, which makes term searches binary.
import { assert } from '../lib/assert.js';
import type { LogIndex, Term } from '../lib/ids.js';
import type { Entry } from './types.js';

const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

interface SliceCache {
  readonly lo: number;
  readonly end: number;
  readonly bytes: number;
  readonly entries: readonly Entry[];
}

const EMPTY_CACHE: SliceCache = { lo: -1, end: -1, bytes: 0, entries: NO_ENTRIES };

/** The entry the log starts after: a snapshot's last entry, or (0, 0) for a log from index 1. */
export interface LogStart {
  readonly index: number;
  readonly term: number;
}

export class RaftLog {
  /** entries[i] has index offset + i. */
  private entries: Entry[] = [];
  private offset: number;
  /** The term of the entry at offset - 1 (0 for the empty prefix of a fresh log). */
  private offsetTerm: number;
  /** Indexes of the config entries held, ascending; configVersion counts changes to it. */
  private configIndexes: number[] = [];
  configVersion = 0;
  /** The last index known to be on stable storage. */
  private stable: number;
  committed: LogIndex;
  applied: LogIndex;
  /** The last slice handed out: appends to several followers and the Ready often ask for the same range. */
  private cache: SliceCache = EMPTY_CACHE;

  /** `persisted` starts right after `start` (entries at or below start.index are the caller's to drop first). */
  constructor(persisted: readonly Entry[], committed: LogIndex, applied: LogIndex, start: LogStart = { index: 0, term: 0 }) {
    this.offset = start.index + 1;
    this.offsetTerm = start.term;
    for (let i = 0; i < persisted.length; i++) {
      const e = persisted[i]!;
      assert(e.index === this.offset + i, `the persisted log has a gap at index ${this.offset + i}`);
      assert(e.term >= (i === 0 ? this.offsetTerm : persisted[i - 1]!.term), `the persisted log has a decreasing term at index ${e.index}`);
      this.entries.push(e);
      if (e.type === 'config') this.configIndexes.push(e.index);
    }
    this.stable = this.lastIndex();
    assert(committed <= this.lastIndex(), `commit ${committed} is beyond the last persisted index ${this.lastIndex()}`);
    assert(applied <= committed, `applied ${applied} is beyond commit ${committed}`);
    this.committed = committed;
    this.applied = applied;
  }

  firstIndex(): LogIndex {
    return this.offset as LogIndex;
  }

  /** The last config entry's index (0 when the log holds none). */
  lastConfigIndex(): number {
    const n = this.configIndexes.length;
    return n === 0 ? 0 : this.configIndexes[n - 1]!;
  }

  /** The last config entry's index at or below `index` (0 when the log holds none there). */
  configIndexAtOrBelow(index: number): number {
    for (let i = this.configIndexes.length - 1; i >= 0; i--) if (this.configIndexes[i]! <= index) return this.configIndexes[i]!;
    return 0;
  }

  private dropConfigIndexesFrom(index: number): void {
    let n = this.configIndexes.length;
    while (n > 0 && this.configIndexes[n - 1]! >= index) n--;
    if (n === this.configIndexes.length) return;
    this.configIndexes.length = n;
    this.configVersion++;
  }

  private noteConfig(e: Entry): void {
    if (e.type !== 'config') return;
    this.configIndexes.push(e.index);
    this.configVersion++;
  }

  lastIndex(): LogIndex {
    return (this.offset + this.entries.length - 1) as LogIndex;
  }

  lastTerm(): Term {
    const n = this.entries.length;
    return (n === 0 ? this.offsetTerm : this.entries[n - 1]!.term) as Term;
  }

  /** The term at `index`, or undefined when this log does not hold it. */
  term(index: number): Term | undefined {
    const i = index - this.offset;
    if (i >= 0 && i < this.entries.length) return this.entries[i]!.term;
    if (i === -1) return this.offsetTerm as Term;
    return undefined;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entry(index: number): Entry | undefined {
    return this.entries[index - this.offset];
  }

  /** The voting rule of section 5.4.1: a later last term wins, then a longer log. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The largest index <= `bound` whose term is <= `term` (0 if none); binary because terms never decrease. */
  lastIndexAtOrBelowTerm(term: number, bound: number): LogIndex {
    let lo = this.offset;
    let hi = Math.min(bound, this.lastIndex());
    let found = this.offset - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid - this.offset]!.term <= term) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found as LogIndex;
  }

  /** The first index holding `term`, searching at or below `bound` (the term must be held at `bound`). */
  firstIndexOfTerm(term: number, bound: number): LogIndex {
    let lo = this.offset;
    let hi = bound;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid - this.offset]!.term < term) lo = mid + 1;
      else hi = mid;
    }
    return lo as LogIndex;
  }

  /**
   * The index of the first of `entries` that this log does not hold with the same term (0 when it holds them all).
   * entries must be contiguous.
   */
  findConflict(entries: readonly Entry[]): LogIndex {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (this.term(e.index) !== e.term) return e.index;
    }
    return 0 as LogIndex;
  }

  /**
   * The follower's side of AppendEntries: if the entry at prevIndex has prevTerm, keep what matches, replace from the
   * first conflict, and commit up to min(commit, last new index). Returns the last new index, or -1 on a mismatch.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: readonly Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with the committed prefix (commit ${this.committed})`);
      this.append(entries, conflict - prevIndex - 1);
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Appends entries[from..], truncating whatever this log holds at and after entries[from].index. */
  append(entries: readonly Entry[], from = 0): LogIndex {
    if (from >= entries.length) return this.lastIndex();
    const first = entries[from]!.index;
    assert(first > this.committed, `truncating at ${first} would drop committed entries (commit ${this.committed})`);
    assert(first <= this.lastIndex() + 1, `appending at ${first} leaves a gap after ${this.lastIndex()}`);
    assert(first >= this.offset, `appending at ${first} before the log's first index ${this.offset}`);
    const keep = first - this.offset;
    if (keep < this.entries.length) {
      this.entries.length = keep;
      this.cache = EMPTY_CACHE;
      this.dropConfigIndexesFrom(first);
    }
    if (first - 1 < this.stable) this.stable = first - 1;
    const dst = this.entries;
    for (let i = from; i < entries.length; i++) {
      const e = entries[i]!;
      dst.push(e);
      if (e.type === 'config') this.noteConfig(e);
    }
    return this.lastIndex();
  }

  /** Appends one entry the leader created (no truncation). */
  push(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'a leader appends at its last index + 1');
    this.entries.push(entry);
    this.noteConfig(entry);
  }

  /** The leader's batch append: one new entry per data, all of `term`, after the last index. */
  pushBatch(term: Term, type: Entry['type'], datas: readonly Uint8Array[]): void {
    assert(term >= this.lastTerm(), 'a leader never appends an entry of an older term');
    const dst = this.entries;
    let index = this.lastIndex();
    for (let i = 0; i < datas.length; i++) {
      const e: Entry = { term, index: ++index as LogIndex, type, data: datas[i]! };
      dst.push(e);
      if (type === 'config') this.noteConfig(e);
    }
  }

  /**
   * Drops the entries up to `index` (they are in a snapshot the caller holds); the log then starts after it. Only
   * applied (hence stable) entries may go.
   */
  compact(index: number): void {
    if (index < this.offset) return;
    assert(index <= this.applied && index <= this.stable, `compacting to ${index} beyond applied ${this.applied} or stable ${this.stable}`);
    const t = this.term(index)!;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
    this.offsetTerm = t;
    this.cache = EMPTY_CACHE;
    const before = this.configIndexes.length;
    this.configIndexes = this.configIndexes.filter((i) => i > index);
    if (this.configIndexes.length !== before) this.configVersion++;
  }

  /**
   * Replaces the whole log with a snapshot's prefix: nothing held after `start`, which is committed (the snapshot
   * holds only committed entries) and counts as stable (the caller persists the snapshot with the next Ready).
   * `applied` stays: the state machine catches up when the caller installs the snapshot.
   */
  restore(start: LogStart): void {
    assert(start.index > this.committed, `restoring a snapshot at ${start.index} at or below commit ${this.committed}`);
    this.entries = [];
    this.offset = start.index + 1;
    this.offsetTerm = start.term;
    this.stable = start.index;
    this.committed = start.index as LogIndex;
    this.cache = EMPTY_CACHE;
    if (this.configIndexes.length > 0) {
      this.configIndexes = [];
      this.configVersion++;
    }
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index as LogIndex;
    return true;
  }

  appliedTo(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, `applied ${index} is beyond commit ${this.committed}`);
    this.applied = index as LogIndex;
  }

  hasUnstable(): boolean {
    return this.stable < this.lastIndex();
  }

  unstableEntries(): readonly Entry[] {
    return this.slice(this.stable + 1, this.lastIndex() + 1, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }

  /** The caller persisted up to (index, term); ignored if that entry was replaced meanwhile. */
  stableTo(index: number, term: number): void {
    if (index <= this.stable) return;
    if (this.term(index) !== term) return;
    this.stable = index;
  }

  stableIndex(): LogIndex {
    return this.stable as LogIndex;
  }

  /** After a restore, entries up to the snapshot are applied by installing it, not one by one. */
  private nextToApply(): number {
    return Math.max(this.applied + 1, this.offset);
  }

  hasNextCommitted(): boolean {
    return this.committed >= this.nextToApply();
  }

  /** Committed entries after `applied`, at most countMax of them and about bytesMax bytes (always at least one). */
  nextCommitted(countMax: number, bytesMax: number): readonly Entry[] {
    return this.slice(this.nextToApply(), this.committed + 1, countMax, bytesMax);
  }

  /**
   * Entries in [lo, hi), at most countMax and about bytesMax of data (at least one entry if any). The result may be
   * shared with later calls for the same range (appends to several followers, the Ready): never modify it.
   */
  slice(lo: number, hi: number, countMax: number, bytesMax: number): readonly Entry[] {
    if (lo >= hi) return NO_ENTRIES;
    assert(lo >= this.offset && hi <= this.lastIndex() + 1, `slice [${lo}, ${hi}) is outside the log`);
    let end = Math.min(hi, lo + countMax);
    // The cached slice is reusable when it is exactly this range and was not cut short by its byte budget.
    if (lo === this.cache.lo && end === this.cache.end && this.cache.bytes <= bytesMax) return this.cache.entries;
    let bytes = 0;
    const src = this.entries;
    const base = this.offset;
    for (let i = lo; i < end; i++) {
      const size = src[i - base]!.data.byteLength;
      if (bytes + size > bytesMax && i > lo) {
        end = i;
        break;
      }
      bytes += size;
    }
    const entries = src.slice(lo - base, end - base);
    this.cache = { lo, end, bytes, entries };
    return entries;
  }
}
