// RaftStorage that knows what it had: it wraps a storage and keeps the acknowledged-state marker (marker.ts) in step
// with every synced write, and at start-up salvages what it holds and compares it with the marker. The argument for
// each rule is in docs/storage-faults.md.
import type { LogIndex } from '../lib/ids.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { storageFailed } from './common.js';
import { covers, type AckMarker, type MarkerStore } from './marker.js';
import type { CheckedLoad, LoadCheckedOptions, LoadedState, RaftStorage, SaveOptions, SnapshotBytes, SnapshotInfo, StorageRecovery } from './types.js';

/** A storage that can load what it can trust and say what it dropped (LevelRaftStorage opened with salvage). */
export interface SalvagingStorage extends RaftStorage {
  salvage?(): Promise<{ state: LoadedState; problems: string[] }>;
  /** What salvage() found is reported: it need not be kept for a later start (see LevelRaftStorage.salvage). */
  salvageReported?(): Promise<void>;
}

interface Position {
  readonly index: number;
  readonly term: number;
}

/** A target no log covers until it holds an entry of a later term (the marker was lost: the index is not known). */
const UNKNOWN_INDEX = Number.MAX_SAFE_INTEGER;

export class CheckedStorage implements RaftStorage {
  /** The last entry of the durable log (or the snapshot's when the log is empty). */
  private last: Position = { index: 0, term: 0 };
  private hard: { term: number; vote: HardState['vote'] } = { term: 0, vote: null };
  /** What the marker on disk says. */
  private marker: AckMarker = { ackedIndex: 0, ackedTerm: 0, term: 0, vote: null };
  /** While recovering: what this node had acknowledged before the fault; the marker never goes below it. */
  private floor: Position | null = null;
  /** Whether the marker was written since start-up (then `marker` is what the file holds). */
  private written = false;

  constructor(
    readonly inner: SalvagingStorage,
    readonly markerStore: MarkerStore,
  ) {}

  /**
   * With `checkOnly` (the inner store opened to check only, LevelRaftStorage.open({ salvage: 'check' })), a store
   * found damaged is left exactly as it was, the marker too: the caller refuses to start from it.
   */
  async loadChecked(options: LoadCheckedOptions = {}): Promise<CheckedLoad> {
    const salvaged = this.inner.salvage !== undefined ? await this.inner.salvage() : { state: await this.inner.load(), problems: [] };
    let state = salvaged.state;
    const last = lastOf(state);
    const reasons = salvaged.problems.length === 0 ? [] : [`its storage is damaged: ${salvaged.problems.join('; ')}`];
    const notes: string[] = [];
    const read = await this.markerStore.read();
    let target: Position | null = null;
    if (read.kind === 'ok') {
      const m = read.marker;
      target = { index: m.ackedIndex, term: m.ackedTerm };
      // The marker may be newer than the hard state (a log rolled back with it): its term and vote win.
      const hs = state.hardState;
      if (m.term > hs.term || (m.term === hs.term && hs.vote === null && m.vote !== null)) state = { ...state, hardState: { ...hs, term: m.term as HardState['term'], vote: m.vote } };
      if (!covers(last.term, last.index, m.ackedTerm, m.ackedIndex)) {
        // After a salvage, what it kept (the damaged part dropped), which is what must reach the marker again.
        const held = salvaged.problems.length === 0 ? 'its log ends' : options.checkOnly === true ? 'what it can trust of its log ends' : 'what it kept of its log ends';
        reasons.push(`${held} at index ${last.index} (term ${last.term}), before index ${m.ackedIndex} (term ${m.ackedTerm}) it had acknowledged (${this.markerStore.where}): the disk lost data, or the data directory is an older copy`);
      }
    } else if (read.kind === 'damaged') {
      reasons.push(read.reason);
    } else if (last.index > 0 || state.hardState.term > 0) {
      notes.push(`no marker at ${this.markerStore.where} for a data directory that holds a log: made one (nothing acknowledged before can be checked this time)`);
    }
    let recovery: StorageRecovery | null = null;
    if (reasons.length > 0) {
      target ??= { index: UNKNOWN_INDEX, term: Math.max(state.hardState.term, last.term) };
      recovery = { reason: reasons.join('; '), target };
      if (options.checkOnly === true) return { state, recovery, notes };
      this.floor = target;
    }
    this.last = last;
    this.hard = { term: state.hardState.term, vote: state.hardState.vote };
    // The marker on disk says at least this from now on (a lost or damaged one is written again).
    await this.writeMarker(this.wanted());
    // Only now, with the target in the marker, may the store forget what it found: the reason goes out with the
    // recovery (the driver logs it at once); a start that failed before this finds it again at the next start.
    if (salvaged.problems.length > 0) await this.inner.salvageReported?.();
    return { state, recovery, notes };
  }

  async repaired(): Promise<void> {
    if (this.floor === null) return;
    this.floor = null;
    await this.writeMarker(this.wanted());
  }

  load(): Promise<LoadedState> {
    return this.inner.load();
  }

  /**
   * Before a write that leaves the log less up to date than the marker says (entries replaced by a leader's, or a
   * snapshot over a longer log), the marker comes down first to the new end, which the old log covers too; after any
   * other synced write it goes up to the new end. Either way a crash never leaves a marker the log does not cover,
   * and nothing is acknowledged (the caller sends after save resolves) that the marker does not cover.
   */
  async save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    const synced = options.snapshot !== undefined || (options.sync ?? true);
    if (!synced) return this.inner.save(hardState, entries, options);
    const next = lastAfter(this.last, entries, options.snapshot?.meta ?? null);
    const hard = hardState === null ? this.hard : { term: hardState.term, vote: hardState.vote };
    const want = this.markerFor(next, hard);
    const lowers = !covers(want.ackedTerm, want.ackedIndex, this.marker.ackedTerm, this.marker.ackedIndex);
    if (lowers) await this.writeMarker(want);
    await this.inner.save(hardState, entries, options);
    this.last = next;
    this.hard = hard;
    if (!lowers) await this.writeMarker(want);
  }

  firstIndex(): Promise<LogIndex> {
    return this.inner.firstIndex();
  }

  lastIndex(): Promise<LogIndex> {
    return this.inner.lastIndex();
  }

  getRange(lo: LogIndex, hi: LogIndex): Promise<Entry[]> {
    return this.inner.getRange(lo, hi);
  }

  hardState(): Promise<HardState> {
    return this.inner.hardState();
  }

  snapshotInfo(): SnapshotInfo | null {
    return this.inner.snapshotInfo();
  }

  readSnapshot(): Promise<{ info: SnapshotInfo; data: Uint8Array } | null> {
    return this.inner.readSnapshot();
  }

  /** A snapshot this node took covers entries it holds: the log's end does not move, nor does the marker. */
  saveSnapshot(meta: SnapshotMeta, data: SnapshotBytes, compactThrough: LogIndex): Promise<void> {
    return this.inner.saveSnapshot(meta, data, compactThrough);
  }

  async close(): Promise<void> {
    await this.inner.close();
    await this.markerStore.close();
  }

  private wanted(): AckMarker {
    return this.markerFor(this.last, this.hard);
  }

  /** The marker for a log ending at `last`: never below the floor while recovering. */
  private markerFor(last: Position, hard: { term: number; vote: HardState['vote'] }): AckMarker {
    const f = this.floor;
    const acked = f !== null && !covers(last.term, last.index, f.term, f.index) ? f : last;
    return { ackedIndex: acked.index, ackedTerm: acked.term, term: hard.term, vote: hard.vote };
  }

  private async writeMarker(m: AckMarker): Promise<void> {
    const cur = this.marker;
    if (cur.ackedIndex === m.ackedIndex && cur.ackedTerm === m.ackedTerm && cur.term === m.term && cur.vote === m.vote && this.written) return;
    await this.markerStore.write(m).catch((err: unknown) => {
      throw storageFailed(`writing the marker ${this.markerStore.where} failed`, err);
    });
    this.marker = m;
    this.written = true;
  }
}

function lastOf(state: LoadedState): Position {
  const e = state.entries.at(-1);
  if (e !== undefined) return { index: e.index, term: e.term };
  return state.snapshot === undefined ? { index: 0, term: 0 } : { index: state.snapshot.index, term: state.snapshot.term };
}

function lastAfter(last: Position, entries: readonly Entry[], snapshot: SnapshotMeta | null): Position {
  const e = entries.at(-1);
  if (e !== undefined) return { index: e.index, term: e.term };
  return snapshot === null ? last : { index: snapshot.index, term: snapshot.term };
}
