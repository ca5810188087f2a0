// A node's simulated disk: what is synced survives a crash; the one write in progress (a Ready's snapshot, hard state
// and entries) is lost if the node crashes before the sync completes. A snapshot (its metadata and the state
// machine's bytes) replaces the log prefix it covers.
import { logIndex, term } from '../../src/lib/ids.js';
import type { Entry, HardState, RaftInitialState, SnapshotMeta } from '../../src/raft/types.js';

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

/** A snapshot on disk: what the core knows of it, and the state machine's bytes. */
export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

interface PendingWrite {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: StoredSnapshot | null;
}

export class SimDisk {
  hardState: HardState = emptyHardState;
  snapshot: StoredSnapshot | null = null;
  /** The synced log: entries[i] has index firstIndex + i. */
  readonly entries: Entry[] = [];
  firstIndex = 1;
  private pending: PendingWrite | null = null;
  writes = 0;

  get lastIndex(): number {
    return this.firstIndex - 1 + this.entries.length;
  }

  /** The term of the synced entry at `index` (the snapshot's at its index, 0 at 0), or undefined. */
  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.snapshot !== null && index === this.snapshot.meta.index) return this.snapshot.meta.term;
    return this.entries[index - this.firstIndex]?.term;
  }

  hasPendingWrite(): boolean {
    return this.pending !== null;
  }

  /** Starts an unsynced write; only one may be in progress (the node loop takes no new Ready meanwhile). */
  begin(hardState: HardState | null, entries: readonly Entry[], snapshot: StoredSnapshot | null = null): void {
    if (this.pending !== null) throw new Error('the simulated disk has a write in progress already');
    this.pending = { hardState, entries, snapshot };
  }

  /**
   * The write is durable: a snapshot replaces the whole log, entries replace every stored entry at an index >=
   * entries[0].index.
   */
  sync(): void {
    const w = this.pending;
    if (w === null) return;
    this.pending = null;
    this.writes++;
    if (w.snapshot !== null) {
      this.snapshot = w.snapshot;
      this.entries.length = 0;
      this.firstIndex = w.snapshot.meta.index + 1;
    }
    if (w.hardState !== null) this.hardState = w.hardState;
    if (w.entries.length === 0) return;
    const first = w.entries[0]!.index;
    if (first > this.lastIndex + 1) throw new Error(`a write at index ${first} would leave a gap after ${this.lastIndex}`);
    if (first < this.firstIndex) throw new Error(`a write at index ${first} lands before the log's first index ${this.firstIndex}`);
    this.entries.length = first - this.firstIndex;
    for (const e of w.entries) this.entries.push(e);
  }

  /** The caller took a snapshot (durable at once): it replaces the stored one, and entries up to `compactIndex` go. */
  compact(snapshot: StoredSnapshot, compactIndex: number): void {
    this.snapshot = snapshot;
    const drop = Math.min(this.entries.length, Math.max(0, compactIndex + 1 - this.firstIndex));
    if (drop > 0) {
      this.entries.splice(0, drop);
      this.firstIndex += drop;
    }
  }

  /** A crash: the write in progress never reached the disk. */
  dropUnsynced(): void {
    this.pending = null;
  }

  /** What a restarted node loads: the synced hard state, snapshot and log (the state machine restores the snapshot). */
  load(): RaftInitialState {
    const initial = { hardState: this.hardState, entries: this.entries.slice(), applied: logIndex(this.snapshot?.meta.index ?? 0) };
    return this.snapshot === null ? initial : { ...initial, snapshot: this.snapshot.meta };
  }
}
