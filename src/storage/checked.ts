// RaftStorage that knows what it had: it wraps a storage and keeps the acknowledged-state marker (marker.ts) in step
// with every synced write, and at start-up salvages what it holds and compares it with the marker. The argument for
// each rule is in docs/storage-faults.md.
import type { LogIndex } from '../lib/ids.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { storageFailed } from './common.js';
import { covers, type AckMarker, type MarkerStore } from './marker.js';
import type { CheckedLoad, LoadedState, RaftStorage, SaveOptions, SnapshotBytes, SnapshotInfo, StagedSave, StorageRecovery } from './types.js';

/** A storage that can load what it can trust and say what it dropped (LevelRaftStorage opened with salvage). */
export interface SalvagingStorage extends RaftStorage {
  salvage?(): Promise<{ state: LoadedState; problems: string[] }>;
}

interface Position {
  readonly index: number;
  readonly term: number;
}

/** A target no log covers until it holds an entry of a later term (the marker was lost: the index is not known). */
const UNKNOWN_INDEX = Number.MAX_SAFE_INTEGER;

const ACKNOWLEDGED: StagedSave = { acknowledged: Promise.resolve() };

interface MarkerWaiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

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
  /**
   * The marker queue. Writes go one at a time; a request made while one is on its way waits behind it and is merged
   * with any made after it (the latest covers the earlier ones: requests only go up, see saveStaged), so a burst of
   * saves costs one marker write more, not one each. `asked` is what the file will say once the queue is empty.
   */
  private asked: AckMarker = { ackedIndex: 0, ackedTerm: 0, term: 0, vote: null };
  private askedSeq = 0;
  private writtenSeq = 0;
  private waiters: MarkerWaiter[] = [];
  private pumping = false;
  private markerFailure: unknown = null;

  constructor(
    readonly inner: SalvagingStorage,
    readonly markerStore: MarkerStore,
  ) {}

  async loadChecked(): Promise<CheckedLoad> {
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
        const held = salvaged.problems.length === 0 ? 'its log ends' : 'what it kept of its log ends';
        reasons.push(`${held} at index ${last.index} (term ${last.term}), before index ${m.ackedIndex} (term ${m.ackedTerm}) it had acknowledged (${this.markerStore.where}): the disk lost data, or the data directory is an older copy`);
      }
    } else if (read.kind === 'damaged') {
      reasons.push(read.reason);
    } else if (last.index > 0 || state.hardState.term > 0) {
      notes.push(`no marker at ${this.markerStore.where} for a data directory that holds a log: made one (nothing acknowledged before can be checked this time)`);
    }
    this.last = last;
    this.hard = { term: state.hardState.term, vote: state.hardState.vote };
    let recovery: StorageRecovery | null = null;
    if (reasons.length > 0) {
      target ??= { index: UNKNOWN_INDEX, term: Math.max(state.hardState.term, last.term) };
      this.floor = target;
      recovery = { reason: reasons.join('; '), target };
    }
    // The marker on disk says at least this from now on (a lost or damaged one is written again).
    await this.askMarker(this.wanted());
    return { state, recovery, notes };
  }

  async repaired(): Promise<void> {
    if (this.floor === null) return;
    this.floor = null;
    await this.moveMarker(this.wanted());
  }

  load(): Promise<LoadedState> {
    return this.inner.load();
  }

  /** saveStaged, and its acknowledgement: what it wrote may be acknowledged once this resolves. */
  async save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    const staged = await this.saveStaged(hardState, entries, options);
    await staged.acknowledged;
  }

  /**
   * Before a write that leaves the log less up to date than the marker says (entries replaced by a leader's, or a
   * snapshot over a longer log), the marker comes down first to the new end, which the old log covers too, once
   * every marker asked before is on disk; after any other synced write it goes up to the new end, and `acknowledged`
   * resolves when it has. Either way a crash never leaves a marker the log does not cover, and nothing is
   * acknowledged (the caller sends once `acknowledged` resolves) that the marker does not cover. The log write of the
   * next save may run while this one's marker is written (the caller starts it once this resolves).
   */
  async saveStaged(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<StagedSave> {
    const synced = options.snapshot !== undefined || (options.sync ?? true);
    if (!synced) {
      await this.inner.save(hardState, entries, options);
      return ACKNOWLEDGED;
    }
    const next = lastAfter(this.last, entries, options.snapshot?.meta ?? null);
    const hard = hardState === null ? this.hard : { term: hardState.term, vote: hardState.vote };
    const want = this.markerFor(next, hard);
    const lowers = !covers(want.ackedTerm, want.ackedIndex, this.asked.ackedTerm, this.asked.ackedIndex);
    if (lowers) await this.moveMarker(want);
    await this.inner.save(hardState, entries, options);
    this.last = next;
    this.hard = hard;
    return lowers ? ACKNOWLEDGED : { acknowledged: this.askMarker(want) };
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
    // A marker write on its way finishes first (a failed one was reported to whoever waited for it).
    await this.waitForMarker(this.askedSeq).catch(() => undefined);
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

  /**
   * Puts `m` on the marker queue; resolves once the file says `m` or more. Only for a marker that covers every one
   * asked before (moveMarker otherwise): a merged request resolves the earlier ones' waiters too.
   */
  private askMarker(m: AckMarker): Promise<void> {
    const cur = this.asked;
    const same = cur.ackedIndex === m.ackedIndex && cur.ackedTerm === m.ackedTerm && cur.term === m.term && cur.vote === m.vote;
    if (!same || this.askedSeq === 0) {
      this.asked = m;
      this.askedSeq++;
    }
    const done = this.waitForMarker(this.askedSeq);
    if (!this.pumping && this.writtenSeq < this.askedSeq) void this.pump();
    return done;
  }

  /** Any marker, lower ones included: what was asked before is written first, then `m`, awaited. */
  private async moveMarker(m: AckMarker): Promise<void> {
    await this.waitForMarker(this.askedSeq);
    await this.askMarker(m);
  }

  private waitForMarker(seq: number): Promise<void> {
    if (this.markerFailure !== null) return Promise.reject(this.markerFailure as Error);
    if (this.writtenSeq >= seq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** Writes the latest marker asked for until the queue is empty; a failure fails every waiter, now and later. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.writtenSeq < this.askedSeq) {
        const seq = this.askedSeq;
        await this.writeMarker(this.asked);
        this.writtenSeq = seq;
        let n = 0;
        while (n < this.waiters.length && this.waiters[n]!.seq <= seq) this.waiters[n++]!.resolve();
        if (n > 0) this.waiters.splice(0, n);
      }
    } catch (err) {
      this.markerFailure = err;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(err);
    } finally {
      this.pumping = false;
    }
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
