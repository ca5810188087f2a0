// A node's simulated disk: what is synced survives a crash; the one write in progress (a Ready's hard state and
// entries) is lost if the node crashes before the sync completes.
import { logIndex, term } from '../../src/lib/ids.js';
import type { Entry, HardState, RaftInitialState } from '../../src/raft/types.js';

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

interface PendingWrite {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
}

export class SimDisk {
  hardState: HardState = emptyHardState;
  /** The synced log: entries[i] has index i + 1. */
  readonly entries: Entry[] = [];
  private pending: PendingWrite | null = null;
  writes = 0;

  get lastIndex(): number {
    return this.entries.length;
  }

  hasPendingWrite(): boolean {
    return this.pending !== null;
  }

  /** Starts an unsynced write; only one may be in progress (the node loop takes no new Ready meanwhile). */
  begin(hardState: HardState | null, entries: readonly Entry[]): void {
    if (this.pending !== null) throw new Error('the simulated disk has a write in progress already');
    this.pending = { hardState, entries };
  }

  /** The write is durable: entries replace every stored entry at an index >= entries[0].index. */
  sync(): void {
    const w = this.pending;
    if (w === null) return;
    this.pending = null;
    this.writes++;
    if (w.hardState !== null) this.hardState = w.hardState;
    if (w.entries.length === 0) return;
    const first = w.entries[0]!.index;
    if (first > this.entries.length + 1) throw new Error(`a write at index ${first} would leave a gap after ${this.entries.length}`);
    this.entries.length = first - 1;
    for (const e of w.entries) this.entries.push(e);
  }

  /** A crash: the write in progress never reached the disk. */
  dropUnsynced(): void {
    this.pending = null;
  }

  /** What a restarted node loads: the synced hard state and log; the state machine is rebuilt (applied 0). */
  load(): RaftInitialState {
    return { hardState: this.hardState, entries: this.entries.slice(), applied: logIndex(0) };
  }
}
