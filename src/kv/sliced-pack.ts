// MessagePack encoding of a large document in slices, yielding to the event loop between them, so that snapshotting
// a big state machine never blocks heartbeats for long. The bytes decode exactly as one pack() of the whole would.
import type { Packr } from 'msgpackr';
import { MsgpackCursor } from './msgpack-scan.js';

/** Items packed between two yields. */
const SLICE_ITEMS = 1024;
/**
 * A slice also ends once its items hold about this many bytes: 80 values of 900 KB in one slice were 72 MB packed in
 * one go, which held a loaded manager's loop for seconds and cost the cluster its leader (a black-box tester's).
 */
const SLICE_BYTES = 1 << 20;

/** About what a value packs to: a string's or bytes' length, and a little for anything else (nested values too). */
function roughBytes(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (v instanceof Uint8Array) return v.byteLength;
  return 8;
}
/** Bytes copied between two yields when the whole is copied out (bytes()). */
const COPY_SLICE_BYTES = 8 * 1024 * 1024;

export type YieldFn = () => Promise<void>;

export const yieldToEventLoop: YieldFn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Packs into one buffer that grows as it fills (start it at about the size expected, say the last snapshot's): the
 * whole is one allocation, with no part per slice left behind as garbage, and a state machine keeps it as the bytes
 * its compacted records live in (KvStateMachine.captureSnapshotParts).
 */
export class SlicedPacker {
  private out: Buffer;
  /** The bytes packed so far: where the next value starts in the whole. */
  private packedBytes = 0;

  constructor(
    private readonly packr: Packr,
    private readonly yieldFn: YieldFn = yieldToEventLoop,
    expectedBytes = 64 * 1024,
  ) {
    this.out = Buffer.allocUnsafeSlow(Math.max(1024, Math.ceil(expectedBytes)));
  }

  /** One whole value (small ones: headers, keys, scalars). */
  value(v: unknown): void {
    // pack() answers a view of a buffer it reuses: copied in at once.
    this.push(this.packr.pack(v));
  }

  /** A map of string keys, with the header msgpackr writes for an object (map16), so the bytes match pack(object). */
  mapHeader(entries: number): void {
    this.push(Uint8Array.of(0xde, entries >> 8, entries & 0xff));
  }

  arrayHeader(length: number): void {
    if (length < 16) this.push(Uint8Array.of(0x90 | length));
    else if (length < 0x1_0000) this.push(Uint8Array.of(0xdc, length >> 8, length & 0xff));
    else this.push(Uint8Array.of(0xdd, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff));
  }

  /**
   * An array of `items.length * width` elements: `row(item)` gives each item's `width` elements (width 1: the item
   * itself becomes one element). Packed a slice at a time, with a yield after each slice.
   */
  async array<T>(items: readonly T[], width: number, row: (item: T) => unknown[]): Promise<void> {
    this.arrayHeader(items.length * width);
    let slice: unknown[] = [];
    let sliceBytes = 0;
    for (let i = 0; i < items.length; i++) {
      for (const e of row(items[i]!)) {
        slice.push(e);
        sliceBytes += roughBytes(e);
      }
      if (slice.length < SLICE_ITEMS * width && sliceBytes < SLICE_BYTES && i < items.length - 1) continue;
      const packed = this.packr.pack(slice);
      this.push(packed.subarray(arrayHeaderBytes(packed[0]!)));
      slice = [];
      sliceBytes = 0;
      await this.yieldFn();
    }
  }

  /**
   * An array of `items.length * width` elements: each item's `width` elements packed from `row(item)`, or, when
   * `raw(item)` answers bytes, those bytes as they are (the item's elements packed, as `row` would have packed them).
   * A slice at a time, with a yield after each. With `starts`, each item's offset in the whole (where its first
   * element begins) is pushed onto it, in order.
   */
  async arrayOf<T>(items: readonly T[], width: number, raw: (item: T) => Uint8Array | null, row: (item: T) => unknown[], starts?: number[]): Promise<void> {
    this.arrayHeader(items.length * width);
    let run: unknown[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const packed = this.packr.pack(run);
      const at = this.packedBytes;
      this.push(packed.subarray(arrayHeaderBytes(packed[0]!)));
      if (starts !== undefined) {
        // The run's items begin where their first element does: found by skipping over what was just packed.
        const c = new MsgpackCursor(this.out, at);
        for (let n = run.length / width; n > 0; n--) {
          starts.push(c.pos);
          for (let e = 0; e < width; e++) c.skip();
        }
      }
      run = [];
    };
    let sliceItems = 0;
    let sliceBytes = 0;
    for (let i = 0; i < items.length; i++) {
      const bytes = raw(items[i]!);
      if (bytes === null) {
        for (const e of row(items[i]!)) {
          run.push(e);
          sliceBytes += roughBytes(e);
        }
      } else {
        flush();
        starts?.push(this.packedBytes);
        this.push(bytes);
        sliceBytes += bytes.byteLength;
      }
      if (++sliceItems < SLICE_ITEMS && sliceBytes < SLICE_BYTES && i < items.length - 1) continue;
      flush();
      sliceItems = 0;
      sliceBytes = 0;
      await this.yieldFn();
    }
  }

  private push(bytes: Uint8Array): void {
    const end = this.packedBytes + bytes.byteLength;
    if (end > this.out.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(end, this.out.length * 2));
      this.out.copy(grown, 0, 0, this.packedBytes);
      this.out = grown;
    }
    this.out.set(bytes, this.packedBytes);
    this.packedBytes = end;
  }

  /**
   * The whole, packed so far. A view of the packer's buffer when that is nearly full (a copy of the exact size
   * otherwise, so that the buffer's spare room is not kept alive with it), copied a slice at a time with a yield
   * between (a snapshot of a million keys is 100 MiB: one copy held the loop for 180 ms under load); pack nothing
   * more after.
   */
  async bytes(): Promise<Uint8Array> {
    if (this.out.length - this.packedBytes <= this.out.length / 16) return this.out.subarray(0, this.packedBytes);
    const whole = Buffer.allocUnsafeSlow(this.packedBytes);
    for (let at = 0; at < this.packedBytes; at += COPY_SLICE_BYTES) {
      if (at > 0) await this.yieldFn();
      this.out.copy(whole, at, at, Math.min(this.packedBytes, at + COPY_SLICE_BYTES));
    }
    return whole;
  }
}

function arrayHeaderBytes(first: number): number {
  if ((first & 0xf0) === 0x90) return 1;
  if (first === 0xdc) return 3;
  if (first === 0xdd) return 5;
  throw new Error(`SlicedPacker: not an array header (0x${first.toString(16)})`);
}
