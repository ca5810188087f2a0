// The state machine's key-value records (KvStateMachine), and the snapshot captures that read them while the loop
// goes on.
//
// A key maps to its record or, for a record compacted into a snapshot's bytes (or restored lazily from them) and not
// read since, to where its row (key, value, version) starts in those bytes: a number per record instead of an object
// graph several times that size. Two buffers can hold rows at once, told apart by the number's sign, so a compaction
// can write the side not in use a slice at a time while reads decode either side.
//
// A capture sees the table as it was when it began without a pass over the records (copy on write): while a capture
// is open, a key's first write keeps the record it replaced, for that capture. With a million keys, the capture as a
// reference per record taken in one go, and the compaction as one pass, each held the loop for 0.2-1 s, and the
// leader lost its lease (`npx tsx bench/snapshot.ts --keys 1000000 --tasks 1000`).
import { assert } from '../lib/assert.js';
import { MsgpackCursor } from './msgpack-scan.js';
import type { YieldFn } from './sliced-pack.js';

export interface KvRecord {
  readonly key: string;
  readonly value: string;
  /** The log index of the key's last write. */
  readonly version: number;
}

/** Records a compaction turns into rows between two yields (a map read and write each: a few ms at most). */
export const compactSliceKeysDefault = 4096;

/** Which buffer a row number points into, and where in it. */
const sideOf = (n: number): 0 | 1 => (n >= 0 ? 0 : 1);
const offsetOf = (n: number): number => (n >= 0 ? n : -n - 1);
const rowNumber = (side: 0 | 1, offset: number): number => (side === 0 ? offset : -offset - 1);

/** A view of a table as it was when the capture began; release it (or compact with it) when done. */
export interface KvCapture {
  /**
   * The record of a key the table held when the capture began, as it was then: a record, or a number for a row (its
   * bytes: rowOf, read before the next yield). For another key, what the table holds now.
   */
  valueOf(key: string): KvRecord | number | undefined;
  /** The bytes of a row valueOf answered (key, value, version, packed). */
  rowOf(n: number): Uint8Array;
  /** Stops keeping replaced records for this capture. Idempotent. */
  release(): void;
}

class OpenCapture implements KvCapture {
  /** The record each key held at the capture, for the keys it held and that were written since. */
  readonly replaced = new Map<string, KvRecord>();

  constructor(private readonly table: KvTable) {}

  valueOf(key: string): KvRecord | number | undefined {
    return this.replaced.has(key) ? this.replaced.get(key) : this.table.peek(key);
  }

  rowOf(n: number): Uint8Array {
    return this.table.rowBytes(n);
  }

  release(): void {
    this.table.release(this);
  }
}

export class KvTable {
  /** Key -> record, or its row: a number, see sideOf. */
  private readonly data: Map<string, KvRecord | number>;
  /** The bytes rows point into: [0] for numbers >= 0, [1] for numbers < 0. Null once no number points there. */
  private readonly rows: [Uint8Array | null, Uint8Array | null] = [null, null];
  private readonly rowsLeft: [number, number] = [0, 0];
  private readonly captures = new Set<OpenCapture>();
  /** The side a compaction in progress writes (its buffer is kept while it runs); null when none runs. */
  private compactingSide: 0 | 1 | null = null;
  /** Set once a restore replaced this table: a compaction still running stops. */
  private retired = false;

  /** A table of `data`, whose numbers (offsets, all >= 0) are `rowCount` rows in `rows`. */
  constructor(data = new Map<string, KvRecord | number>(), rows: Uint8Array | null = null, rowCount = 0) {
    this.data = data;
    if (rowCount > 0) {
      this.rows[0] = rows;
      this.rowsLeft[0] = rowCount;
    }
  }

  get size(): number {
    return this.data.size;
  }

  /** How many records are rows, not objects (tests, and the memory they say is held). */
  get rowCount(): number {
    return this.rowsLeft[0] + this.rowsLeft[1];
  }

  /** The key's record, decoded from its row first if it is one (and kept decoded). */
  get(key: string): KvRecord | undefined {
    const v = this.data.get(key);
    if (typeof v !== 'number') return v;
    const c = new MsgpackCursor(this.rows[sideOf(v)]!, offsetOf(v));
    c.skip();
    const r: KvRecord = { key, value: c.str()!, version: c.num()! };
    this.data.set(key, r);
    this.rowGone(sideOf(v));
    return r;
  }

  set(key: string, record: KvRecord): void {
    this.replacing(key);
    this.data.set(key, record);
  }

  delete(key: string): boolean {
    this.replacing(key);
    return this.data.delete(key);
  }

  /** Opens a capture of the table as it is now. */
  capture(): KvCapture {
    const c = new OpenCapture(this);
    this.captures.add(c);
    return c;
  }

  /** What the table holds for a key, row or record, without decoding it (a capture's read). */
  peek(key: string): KvRecord | number | undefined {
    return this.data.get(key);
  }

  rowBytes(n: number): Uint8Array {
    const bytes = this.rows[sideOf(n)];
    assert(bytes !== null, 'a row number points into a buffer the table let go');
    const at = offsetOf(n);
    const c = new MsgpackCursor(bytes, at);
    c.skip();
    c.skip();
    c.skip();
    return bytes.subarray(at, c.pos);
  }

  release(capture: KvCapture): void {
    this.captures.delete(capture as OpenCapture);
  }

  retire(): void {
    this.retired = true;
  }

  /**
   * Turns each record the capture packed into `whole` (keys[i] at starts[i]) into its row there, unless the key was
   * written since the capture; a slice of keys at a time, yielding between slices. Releases the capture. Answers how
   * many were turned. Does nothing if another compaction is running (a capture that overlapped it).
   */
  async compact(capture: KvCapture, keys: readonly string[], whole: Uint8Array, starts: readonly number[], yieldFn: YieldFn, sliceKeys = compactSliceKeysDefault): Promise<number> {
    const open = capture as OpenCapture;
    assert(starts.length === keys.length, 'a compaction needs where every captured record starts');
    if (this.compactingSide !== null || this.retired || !this.captures.has(open)) {
      open.release();
      return 0;
    }
    // Outside a compaction every row is on one side: this one writes the other.
    const side: 0 | 1 = this.rowsLeft[0] > 0 ? 1 : 0;
    assert(this.rowsLeft[side] === 0, 'rows on both sides outside a compaction');
    this.compactingSide = side;
    this.rows[side] = whole;
    let turned = 0;
    try {
      for (let start = 0; start < keys.length && !this.retired; start += sliceKeys) {
        if (start > 0) await yieldFn();
        turned += this.compactSlice(open, keys, starts, side, start, Math.min(keys.length, start + sliceKeys));
      }
    } finally {
      this.compactingSide = null;
      open.release();
      for (const s of [0, 1] as const) if (this.rowsLeft[s] === 0) this.rows[s] = null;
    }
    return turned;
  }

  private compactSlice(capture: OpenCapture, keys: readonly string[], starts: readonly number[], side: 0 | 1, from: number, to: number): number {
    let turned = 0;
    for (let i = from; i < to; i++) {
      const key = keys[i]!;
      // Written since the capture: what was packed is no longer its record.
      if (capture.replaced.has(key)) continue;
      const v = this.data.get(key);
      assert(v !== undefined, `a key held at the capture and never written since is gone: "${key}"`);
      if (typeof v === 'number') {
        if (sideOf(v) === side) continue;
        this.rowsLeft[sideOf(v)]--;
      }
      this.data.set(key, rowNumber(side, starts[i]!));
      this.rowsLeft[side]++;
      turned++;
    }
    return turned;
  }

  /**
   * Before a key's write: open captures keep what it held (decoded, so never a row whose bytes may go). A key the
   * table does not hold now is either one no open capture held, or one deleted since, which every capture holding it
   * kept at that delete: nothing to keep (so a load of new keys adds no entries).
   */
  private replacing(key: string): void {
    if (this.captures.size > 0) {
      const before = this.get(key);
      if (before === undefined) return;
      for (const c of this.captures) if (!c.replaced.has(key)) c.replaced.set(key, before);
      return;
    }
    const v = this.data.get(key);
    if (typeof v === 'number') this.rowGone(sideOf(v));
  }

  private rowGone(side: 0 | 1): void {
    if (--this.rowsLeft[side] === 0 && this.compactingSide !== side) this.rows[side] = null;
  }
}
