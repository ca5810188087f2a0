// A node's simulated disk, as a file system with a page cache: every write lands in the cache at once (reads see
// it), and reaches the platter (the durable state) only when a synced write completes, which flushes everything
// written before it, in order. A crash keeps the durable state plus a random prefix of the unsynced writes (the
// cache may have flushed some of them on its own): exactly what an unsynced write may lose. A snapshot (its
// metadata and bytes) replaces the log prefix it covers.
import { logIndex, term } from '../../src/lib/ids.js';
import type { Random } from '../../src/lib/random.js';
import type { Entry, HardState, RaftInitialState, SnapshotMeta } from '../../src/raft/types.js';
import { checkSave, checkSnapshot, compactedBounds } from '../../src/storage/common.js';

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

/** A snapshot on disk: what the core knows of it, and its bytes. */
export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** One write as the storage issued it. */
export type DiskWrite =
  | { readonly kind: 'save'; readonly hardState: HardState | null; readonly entries: readonly Entry[]; readonly snapshot: StoredSnapshot | null }
  | { readonly kind: 'snapshot'; readonly snapshot: StoredSnapshot; readonly compactThrough: number };

/** The state of a disk at one moment: the hard state, the snapshot, and the log after it. */
export class DiskState {
  hardState: HardState = emptyHardState;
  snapshot: StoredSnapshot | null = null;
  /** entries[i] has index firstIndex + i. */
  entries: Entry[] = [];
  firstIndex = 1;
  /** Entries a storage fault damaged (a flipped bit) or lost (a range gone), by index: what a salvage finds. */
  damaged = new Map<number, 'a flipped bit' | 'missing'>();

  get lastIndex(): number {
    return this.firstIndex - 1 + this.entries.length;
  }

  /** The term of the entry at `index` (the snapshot's at its index, 0 at 0), or undefined. */
  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.snapshot !== null && index === this.snapshot.meta.index) return this.snapshot.meta.term;
    return this.entries[index - this.firstIndex]?.term;
  }

  /** Applies one write (asserting it is one the storage contract allows). */
  apply(w: DiskWrite): void {
    if (w.kind === 'snapshot') {
      checkSnapshot(w.snapshot.meta, w.compactThrough, this.snapshotInfo());
      const { first, last } = compactedBounds(this.firstIndex, this.lastIndex, w.snapshot.meta.index, w.compactThrough);
      this.snapshot = w.snapshot;
      this.entries = first > last ? [] : this.entries.slice(first - this.firstIndex);
      this.firstIndex = first;
      if (this.damaged.size > 0) for (const i of [...this.damaged.keys()]) if (i < first || i > this.lastIndex) this.damaged.delete(i);
      return;
    }
    if (w.snapshot !== null) {
      checkSnapshot(w.snapshot.meta, w.snapshot.meta.index, this.snapshotInfo());
      checkSave(w.entries, w.snapshot.meta.index + 1, w.snapshot.meta.index);
      this.snapshot = w.snapshot;
      this.entries = [];
      this.firstIndex = w.snapshot.meta.index + 1;
      this.damaged.clear();
    } else {
      checkSave(w.entries, this.firstIndex, this.lastIndex, this.snapshot?.meta.index ?? 0);
    }
    if (w.hardState !== null) this.hardState = w.hardState;
    if (w.entries.length === 0) return;
    const start = w.entries[0]!.index;
    this.entries.length = start - this.firstIndex;
    for (const e of w.entries) this.entries.push(e);
    // The write replaced everything from its first index: no damage there or after it is left.
    if (this.damaged.size > 0) for (const i of [...this.damaged.keys()]) if (i >= start) this.damaged.delete(i);
  }

  copy(): DiskState {
    const c = new DiskState();
    c.hardState = this.hardState;
    c.snapshot = this.snapshot;
    c.entries = this.entries.slice();
    c.firstIndex = this.firstIndex;
    c.damaged = new Map(this.damaged);
    return c;
  }

  /**
   * What a salvaging storage loads: the log up to its first damaged or missing entry (the commit index lowered to
   * what is left), and what it dropped.
   */
  salvage(): { state: DiskState; problems: string[] } {
    const snapIndex = this.snapshot?.meta.index ?? 0;
    const prefixDamaged = [...this.damaged.keys()].some((i) => i >= this.firstIndex && i <= snapIndex);
    if (snapIndex >= this.firstIndex && (prefixDamaged || this.lastIndex < snapIndex)) {
      // Damage in the tail kept below the snapshot, or a log cut below it: the snapshot holds those entries; the log
      // restarts after it.
      const trimmed = this.copy();
      trimmed.entries = trimmed.entries.slice(Math.min(trimmed.entries.length, snapIndex + 1 - trimmed.firstIndex));
      trimmed.firstIndex = snapIndex + 1;
      for (const i of [...trimmed.damaged.keys()]) if (i <= snapIndex) trimmed.damaged.delete(i);
      return trimmed.salvage();
    }
    const inLog = [...this.damaged.keys()].filter((i) => i >= this.firstIndex && i <= this.lastIndex);
    if (inLog.length === 0) {
      // A log cut short holds no damaged entry, but its commit index may pass its end: lowered, the marker says the rest.
      const end = Math.max(this.lastIndex, this.snapshot?.meta.index ?? 0);
      if (this.hardState.commit <= end) return { state: this, problems: [] };
      const cut = this.copy();
      cut.hardState = { ...cut.hardState, commit: end as HardState['commit'] };
      return { state: cut, problems: [] };
    }
    const first = Math.min(...inLog);
    const kept = this.copy();
    kept.entries.length = Math.max(0, first - this.firstIndex);
    kept.damaged.clear();
    const end = Math.max(kept.lastIndex, kept.snapshot?.meta.index ?? 0);
    if (kept.hardState.commit > end) kept.hardState = { ...kept.hardState, commit: end as HardState['commit'] };
    return { state: kept, problems: [`entry ${first} is ${this.damaged.get(first)!}: the log is kept up to ${first - 1}`] };
  }

  /** What a restarted node loads. */
  load(): RaftInitialState {
    const initial = { hardState: this.hardState, entries: this.entries.slice(), applied: logIndex(0) };
    return this.snapshot === null ? initial : { ...initial, snapshot: this.snapshot.meta };
  }

  private snapshotInfo(): { meta: SnapshotMeta; sizeBytes: number; crc32: number } | null {
    return this.snapshot === null ? null : { meta: this.snapshot.meta, sizeBytes: this.snapshot.data.length, crc32: 0 };
  }
}

/** A node's disk across its incarnations: the durable state, and the cache of writes not synced yet. */
export class SimDisk {
  /** What survives a crash. */
  durable = new DiskState();
  /** What the running node reads: the durable state plus every write since. */
  cache = new DiskState();
  /** Writes in the cache that are not durable yet, oldest first. */
  private unsynced: DiskWrite[] = [];
  /** Synced writes completed (fsyncs). */
  writes = 0;

  // The durable view, for checkers and tests.
  get hardState(): HardState {
    return this.durable.hardState;
  }

  get snapshot(): StoredSnapshot | null {
    return this.durable.snapshot;
  }

  get entries(): readonly Entry[] {
    return this.durable.entries;
  }

  get firstIndex(): number {
    return this.durable.firstIndex;
  }

  get lastIndex(): number {
    return this.durable.lastIndex;
  }

  termAt(index: number): number | undefined {
    return this.durable.termAt(index);
  }

  /** Some write is in the cache only. */
  hasPendingWrite(): boolean {
    return this.unsynced.length > 0;
  }

  /** A write reaches the cache (and is queued for the platter). Throws on a write the contract forbids. */
  write(w: DiskWrite): DiskWrite {
    this.cache.apply(w);
    this.unsynced.push(w);
    return w;
  }

  /**
   * The fsync of `w` completed: it and every write before it are durable. Calls `persisted` for each, in order
   * (after it is applied). A write no longer queued (flushed by an earlier sync, or lost in a crash) changes nothing.
   */
  sync(w: DiskWrite, persisted: (w: DiskWrite) => void): void {
    const at = this.unsynced.indexOf(w);
    if (at < 0) return;
    const flushed = this.unsynced.splice(0, at + 1);
    for (const x of flushed) {
      this.durable.apply(x);
      persisted(x);
    }
    this.writes++;
  }

  /**
   * A crash: a random prefix of the unsynced writes made it to the platter on its own (reported through
   * `persisted`), the rest is lost; the cache restarts from the durable state.
   */
  crash(random: Random, persisted: (w: DiskWrite) => void): number {
    const kept = random.int(this.unsynced.length + 1);
    for (const x of this.unsynced.slice(0, kept)) {
      this.durable.apply(x);
      persisted(x);
    }
    const lost = this.unsynced.length - kept;
    this.unsynced = [];
    this.cache = this.durable.copy();
    return lost;
  }

  /** What a node that starts now loads. */
  load(): RaftInitialState {
    return this.cache.load();
  }

  /** A salvage at start-up rewrote the store to `state` (durably: it happens before anything else is written). */
  salvaged(state: DiskState): void {
    this.durable = state.copy();
    this.cache = state.copy();
  }

  // ---- storage faults on synced data (the node is down) ----

  /** A flipped bit in one stored entry (null when the log holds none). */
  flipBit(random: Random): number | null {
    const d = this.durable;
    if (d.entries.length === 0) return null;
    const index = d.firstIndex + random.int(d.entries.length);
    d.damaged.set(index, 'a flipped bit');
    this.cache = d.copy();
    return index;
  }

  /** The log's tail is gone (a file cut short): it ends `lost` entries earlier. */
  loseTail(random: Random): number {
    const d = this.durable;
    const lost = d.entries.length === 0 ? 0 : 1 + random.int(d.entries.length);
    d.entries.length -= lost;
    for (const i of [...d.damaged.keys()]) if (i > d.lastIndex) d.damaged.delete(i);
    this.cache = d.copy();
    return lost;
  }

  /** A range of entries is gone from the middle of the log; returns its first index (null when too short). */
  loseRange(random: Random): number | null {
    const d = this.durable;
    if (d.entries.length < 2) return null;
    const from = d.firstIndex + random.int(d.entries.length - 1);
    const count = 1 + random.int(Math.min(8, d.lastIndex - from));
    for (let i = from; i < from + count; i++) d.damaged.set(i, 'missing');
    this.cache = d.copy();
    return from;
  }

  /** The whole data directory is replaced by an older copy of itself (a restored backup). */
  restoreOlder(older: DiskState): void {
    this.durable = older.copy();
    this.cache = older.copy();
  }
}
