// Reading MessagePack without decoding all of it: where a value ends, and the few strings and numbers a restore
// indexes by, read straight from the bytes. A restored task record stays as its bytes until something reads it
// (TaskStore), so a restart builds a handful of strings per record instead of the whole object graph.

const decoder = new TextDecoder('utf-8', { fatal: false });

function truncated(): Error {
  return new Error('unexpected end of the buffer');
}

/** A cursor over MessagePack bytes. Every read checks the bounds and throws (plain Error) on bytes it cannot read. */
export class MsgpackCursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
  ) {}

  private u8(at: number): number {
    const v = this.bytes[at];
    if (v === undefined) throw truncated();
    return v;
  }

  private u16(at: number): number {
    return this.u8(at) * 0x100 + this.u8(at + 1);
  }

  private u32(at: number): number {
    return this.u16(at) * 0x1_0000 + this.u16(at + 2);
  }

  /** The next byte, not consumed. */
  peek(): number {
    return this.u8(this.pos);
  }

  /** Moves past a nil and answers true, or answers false (nothing read). */
  nil(): boolean {
    if (this.u8(this.pos) !== 0xc0) return false;
    this.pos++;
    return true;
  }

  /** An array header's length, or null (nothing read) when the next value is not an array. */
  arrayHeader(): number | null {
    const t = this.u8(this.pos);
    if ((t & 0xf0) === 0x90) return this.take(1, t & 0x0f);
    if (t === 0xdc) return this.take(3, this.u16(this.pos + 1));
    if (t === 0xdd) return this.take(5, this.u32(this.pos + 1));
    return null;
  }

  /** A map header's entry count, or null (nothing read) when the next value is not a map. */
  mapHeader(): number | null {
    const t = this.u8(this.pos);
    if ((t & 0xf0) === 0x80) return this.take(1, t & 0x0f);
    if (t === 0xde) return this.take(3, this.u16(this.pos + 1));
    if (t === 0xdf) return this.take(5, this.u32(this.pos + 1));
    return null;
  }

  /** The byte range of the string here, moved past; null (nothing read) when the next value is not a string. */
  private strRange(): number | null {
    const t = this.u8(this.pos);
    let start: number;
    let length: number;
    if ((t & 0xe0) === 0xa0) [start, length] = [this.pos + 1, t & 0x1f];
    else if (t === 0xd9) [start, length] = [this.pos + 2, this.u8(this.pos + 1)];
    else if (t === 0xda) [start, length] = [this.pos + 3, this.u16(this.pos + 1)];
    else if (t === 0xdb) [start, length] = [this.pos + 5, this.u32(this.pos + 1)];
    else return null;
    if (start + length > this.bytes.length) throw truncated();
    this.pos = start + length;
    return start;
  }

  /** The string here, moved past; null (nothing read) when the next value is not a string. */
  str(): string | null {
    const start = this.strRange();
    if (start === null) return null;
    return decodeUtf8(this.bytes, start, this.pos);
  }

  /** Moves past the string here and answers true; false (nothing read) when the next value is not a string. */
  skipStr(): boolean {
    return this.strRange() !== null;
  }

  /** Whether the string here equals `ascii` (moved past it when it is a string); null when it is not a string. */
  strEquals(ascii: string): boolean | null {
    const start = this.strRange();
    if (start === null) return null;
    if (this.pos - start !== ascii.length) return false;
    for (let i = 0; i < ascii.length; i++) if (this.bytes[start + i] !== ascii.charCodeAt(i)) return false;
    return true;
  }

  /** The number here (any integer or float encoding), moved past; null (nothing read) when it is not a number. */
  num(): number | null {
    const t = this.u8(this.pos);
    const b = this.bytes;
    if (t <= 0x7f) return this.take(1, t);
    if (t >= 0xe0) return this.take(1, t - 0x100);
    switch (t) {
      case 0xcc:
        return this.take(2, this.u8(this.pos + 1));
      case 0xcd:
        return this.take(3, this.u16(this.pos + 1));
      case 0xce:
        return this.take(5, this.u32(this.pos + 1));
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xcf:
      case 0xd3:
      case 0xca:
      case 0xcb: {
        const width = t === 0xd0 ? 1 : t === 0xd1 ? 2 : t === 0xd2 || t === 0xca ? 4 : 8;
        if (this.pos + 1 + width > b.length) throw truncated();
        const view = new DataView(b.buffer, b.byteOffset + this.pos + 1, width);
        const v =
          t === 0xd0 ? view.getInt8(0) : t === 0xd1 ? view.getInt16(0) : t === 0xd2 ? view.getInt32(0) : t === 0xca ? view.getFloat32(0)
          : t === 0xcb ? view.getFloat64(0) : t === 0xcf ? Number(view.getBigUint64(0)) : Number(view.getBigInt64(0));
        return this.take(1 + width, v);
      }
      default:
        return null;
    }
  }

  /** Moves past one whole value (of any type, nested ones included). */
  skip(): void {
    let left = 1;
    let pos = this.pos;
    while (left > 0) {
      left--;
      const t = this.u8(pos);
      if (t <= 0x7f || t >= 0xe0) pos += 1;
      else if (t <= 0x8f) [pos, left] = [pos + 1, left + 2 * (t & 0x0f)];
      else if (t <= 0x9f) [pos, left] = [pos + 1, left + (t & 0x0f)];
      else if (t <= 0xbf) pos += 1 + (t & 0x1f);
      else {
        switch (t) {
          case 0xc0:
          case 0xc2:
          case 0xc3:
            pos += 1;
            break;
          case 0xc4:
          case 0xd9:
            pos += 2 + this.u8(pos + 1);
            break;
          case 0xc5:
          case 0xda:
            pos += 3 + this.u16(pos + 1);
            break;
          case 0xc6:
          case 0xdb:
            pos += 5 + this.u32(pos + 1);
            break;
          case 0xc7:
            pos += 3 + this.u8(pos + 1);
            break;
          case 0xc8:
            pos += 4 + this.u16(pos + 1);
            break;
          case 0xc9:
            pos += 6 + this.u32(pos + 1);
            break;
          case 0xcc:
          case 0xd0:
            pos += 2;
            break;
          case 0xcd:
          case 0xd1:
          case 0xd4:
            pos += 3;
            break;
          case 0xd5:
            pos += 4;
            break;
          case 0xca:
          case 0xce:
          case 0xd2:
            pos += 5;
            break;
          case 0xd6:
            pos += 6;
            break;
          case 0xcb:
          case 0xcf:
          case 0xd3:
            pos += 9;
            break;
          case 0xd7:
            pos += 10;
            break;
          case 0xd8:
            pos += 18;
            break;
          case 0xdc:
            [pos, left] = [pos + 3, left + this.u16(pos + 1)];
            break;
          case 0xdd:
            [pos, left] = [pos + 5, left + this.u32(pos + 1)];
            break;
          case 0xde:
            [pos, left] = [pos + 3, left + 2 * this.u16(pos + 1)];
            break;
          case 0xdf:
            [pos, left] = [pos + 5, left + 2 * this.u32(pos + 1)];
            break;
          default:
            throw new Error(`not MessagePack (byte 0x${t.toString(16)})`);
        }
      }
      if (pos > this.bytes.length) throw truncated();
    }
    this.pos = pos;
  }

  private take<T>(bytes: number, result: T): T {
    this.pos += bytes;
    return result;
  }
}

/** Node's latin1 decoder, which reads any Uint8Array: for ASCII, the same string as UTF-8, with no view made. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, start: number, end: number) => string }).latin1Slice;

/** UTF-8 to a string: ASCII (ids, keys, names, states) through the latin1 decoder, anything else through TextDecoder. */
function decodeUtf8(b: Uint8Array, start: number, end: number): string {
  for (let i = start; i < end; i++) if (b[i]! >= 0x80) return decoder.decode(b.subarray(start, end));
  return latin1Slice.call(b, start, end);
}
