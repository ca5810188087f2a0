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
      return;
    }
    if (w.snapshot !== null) {
      checkSnapshot(w.snapshot.meta, w.snapshot.meta.index, this.snapshotInfo());
      checkSave(w.entries, w.snapshot.meta.index + 1, w.snapshot.meta.index);
      this.snapshot = w.snapshot;
      this.entries = [];
      this.firstIndex = w.snapshot.meta.index + 1;
    } else {
      checkSave(w.entries, this.firstIndex, this.lastIndex, this.snapshot?.meta.index ?? 0);
    }
    if (w.hardState !== null) this.hardState = w.hardState;
    if (w.entries.length === 0) return;
    this.entries.length = w.entries[0]!.index - this.firstIndex;
    for (const e of w.entries) this.entries.push(e);
  }

  copy(): DiskState {
    const c = new DiskState();
    c.hardState = this.hardState;
    c.snapshot = this.snapshot;
    c.entries = this.entries.slice();
    c.firstIndex = this.firstIndex;
    return c;
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
}
