// The reading twin of SlicedPacker: MessagePack read a value at a time from a cursor, with long arrays decoded a
// slice at a time and a yield to the event loop between slices, so installing a large snapshot never blocks
// heartbeats for long. It reads exactly the bytes one unpack() of the whole would.
import type { Unpackr } from 'msgpackr';
import { MsgpackCursor } from './msgpack-scan.js';
import { yieldToEventLoop, type YieldFn } from './sliced-pack.js';

/**
 * msgpackr keeps a DataView of the last buffer it read in a module variable until its next read: after a snapshot,
 * that is the snapshot's whole buffer (39 MiB for 100,000 keys and 100,000 tasks), held on a manager with no traffic.
 * Reading one more byte lets it go.
 */
export function releaseUnpackSource(unpackr: Unpackr): void {
  unpackr.unpack(nilByte);
}

const nilByte = Uint8Array.of(0xc0);

/** Elements decoded between two yields. */
const SLICE_ITEMS = 1024;

export class SlicedUnpacker {
  private pos = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly unpackr: Unpackr,
    private readonly yieldFn: YieldFn = yieldToEventLoop,
  ) {}

  /** Where the cursor is. */
  get position(): number {
    return this.pos;
  }

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  /** The entry count of the map header here, or null (and nothing read) when there is no map header. */
  mapHeader(): number | null {
    return this.header((c) => c.mapHeader());
  }

  /** The length of the array header here, or null (and nothing read) when there is no array header. */
  arrayHeader(): number | null {
    return this.header((c) => c.arrayHeader());
  }

  /** A header read by a MsgpackCursor at the cursor (null at the end of the bytes). */
  private header(read: (c: MsgpackCursor) => number | null): number | null {
    if (this.pos >= this.bytes.length) return null;
    const c = new MsgpackCursor(this.bytes, this.pos);
    const n = read(c);
    this.pos = c.pos;
    return n;
  }

  /** One whole value. */
  value(): unknown {
    let out: unknown;
    this.read(1, (v) => (out = v));
    return out;
  }

  /** `count` consecutive values (an array's elements after its header), a slice at a time, with a yield after each. */
  async elements(count: number, each: (value: unknown, i: number) => void): Promise<void> {
    for (let start = 0; start < count; start += SLICE_ITEMS) {
      const n = Math.min(SLICE_ITEMS, count - start);
      let i = start;
      this.read(n, (v) => each(v, i++));
      await this.yieldFn();
    }
  }

  /**
   * `count` consecutive values walked through a MsgpackCursor, not decoded: `each` must move the cursor past exactly
   * one value (reading what it needs of it). A slice at a time, with a yield after each. Answers where they started.
   */
  async scan(count: number, each: (c: MsgpackCursor, i: number) => void): Promise<number> {
    const start = this.pos;
    const c = new MsgpackCursor(this.bytes, this.pos);
    for (let first = 0; first < count; first += SLICE_ITEMS) {
      const last = Math.min(count, first + SLICE_ITEMS);
      for (let i = first; i < last; i++) each(c, i);
      this.pos = c.pos;
      await this.yieldFn();
    }
    return start;
  }

  /**
   * A view of the bytes from `start` to the cursor (no copy): the sections a lazy restore keeps share the snapshot's
   * buffer, which lives until the last of them is let go. Copies let a section go on its own (a leader reads every
   * pending task), but cost a copy of the whole snapshot at every restore, and the snapshot's own buffer, already
   * old when the scan ends, then stayed resident as garbage until a full collection: 38 MiB more after a restart
   * with 100,000 keys + 100,000 tasks (bench/snapshot.ts).
   */
  viewFrom(start: number): Uint8Array {
    return this.bytes.subarray(start, this.pos);
  }

  /** Reads `n` values from the cursor on (unpackMultiple stops after the n-th). */
  private read(n: number, each: (value: unknown) => void): void {
    if (n === 0) return;
    if (this.pos >= this.bytes.length) throw new Error('unexpected end of the buffer');
    let left = n;
    let end = 0;
    this.unpackr.unpackMultiple(this.bytes.subarray(this.pos), (v: unknown, _start?: number, stop?: number) => {
      each(v);
      end = stop!;
      return --left > 0;
    });
    if (left > 0) throw new Error('unexpected end of the buffer');
    this.pos += end;
  }
}
