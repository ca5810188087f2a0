// MessagePack encoding of a large document in slices, yielding to the event loop between them, so that snapshotting
// a big state machine never blocks heartbeats for long. The bytes decode exactly as one pack() of the whole would.
import type { Packr } from 'msgpackr';

/** Items packed between two yields. */
const SLICE_ITEMS = 1024;

export type YieldFn = () => Promise<void>;

export const yieldToEventLoop: YieldFn = () => new Promise((resolve) => setImmediate(resolve));

export class SlicedPacker {
  private readonly parts: Uint8Array[] = [];

  constructor(
    private readonly packr: Packr,
    private readonly yieldFn: YieldFn = yieldToEventLoop,
  ) {}

  /** One whole value (small ones: headers, keys, scalars). */
  value(v: unknown): void {
    // pack() may answer a view of a buffer it reuses: keep a copy.
    this.parts.push(Uint8Array.prototype.slice.call(this.packr.pack(v)));
  }

  /** A map of string keys, with the header msgpackr writes for an object (map16), so the bytes match pack(object). */
  mapHeader(entries: number): void {
    this.parts.push(Uint8Array.of(0xde, entries >> 8, entries & 0xff));
  }

  arrayHeader(length: number): void {
    if (length < 16) this.parts.push(Uint8Array.of(0x90 | length));
    else if (length < 0x1_0000) this.parts.push(Uint8Array.of(0xdc, length >> 8, length & 0xff));
    else this.parts.push(Uint8Array.of(0xdd, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff));
  }

  /**
   * An array of `items.length * width` elements: `row(item)` gives each item's `width` elements (width 1: the item
   * itself becomes one element). Packed a slice at a time, with a yield after each slice.
   */
  async array<T>(items: readonly T[], width: number, row: (item: T) => unknown[]): Promise<void> {
    this.arrayHeader(items.length * width);
    for (let start = 0; start < items.length; start += SLICE_ITEMS) {
      const slice: unknown[] = [];
      for (let i = start; i < Math.min(items.length, start + SLICE_ITEMS); i++) {
        const r = row(items[i]!);
        for (const e of r) slice.push(e);
      }
      const packed = this.packr.pack(slice);
      this.parts.push(Uint8Array.prototype.slice.call(packed, arrayHeaderBytes(packed[0]!)));
      await this.yieldFn();
    }
  }

  /**
   * An array of `items.length * width` elements: each item's `width` elements packed from `row(item)`, or, when
   * `raw(item)` answers bytes, those bytes as they are (the item's elements packed, as `row` would have packed them).
   * A slice at a time, with a yield after each.
   */
  async arrayOf<T>(items: readonly T[], width: number, raw: (item: T) => Uint8Array | null, row: (item: T) => unknown[]): Promise<void> {
    this.arrayHeader(items.length * width);
    let run: unknown[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const packed = this.packr.pack(run);
      this.parts.push(Uint8Array.prototype.slice.call(packed, arrayHeaderBytes(packed[0]!)));
      run = [];
    };
    for (let start = 0; start < items.length; start += SLICE_ITEMS) {
      for (let i = start; i < Math.min(items.length, start + SLICE_ITEMS); i++) {
        const bytes = raw(items[i]!);
        if (bytes === null) {
          for (const e of row(items[i]!)) run.push(e);
        } else {
          flush();
          this.pushView(bytes);
        }
      }
      flush();
      await this.yieldFn();
    }
  }

  /**
   * Bytes kept as they are: a view that starts where the last part (a view of the same buffer) ends extends it, so
   * the unread rows of a lazy restore, consecutive in their section, become one part instead of one per row.
   */
  private pushView(bytes: Uint8Array): void {
    const last = this.parts.at(-1);
    if (last !== undefined && last.buffer === bytes.buffer && last.byteOffset + last.byteLength === bytes.byteOffset) {
      this.parts[this.parts.length - 1] = new Uint8Array(bytes.buffer, last.byteOffset, last.byteLength + bytes.byteLength);
    } else {
      this.parts.push(bytes);
    }
  }

  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }

  /** The bytes as the parts they were packed in, in order (bytes() joins them). */
  packedParts(): readonly Uint8Array[] {
    return this.parts;
  }
}

function arrayHeaderBytes(first: number): number {
  if ((first & 0xf0) === 0x90) return 1;
  if (first === 0xdc) return 3;
  if (first === 0xdd) return 5;
  throw new Error(`SlicedPacker: not an array header (0x${first.toString(16)})`);
}
