// DNS name compression (RFC 1035 4.1.4) over a message dns-packet encoded, which writes every name in full: six SRV
// replicas of one service repeat `_http._tcp.web.service.minkube` six times and need more than 512 bytes without it.
// Owner names, and the names inside NS, CNAME, PTR and SOA data, become pointers to where the name (or its longest
// known suffix) was written before; an SRV target is written in full, as RFC 2782 asks, but later names may point
// into it. A message this cannot read (it never should) is answered unchanged.

const typeNs = 2;
const typeCname = 5;
const typeSoa = 6;
const typePtr = 12;
const typeSrv = 33;
/** A pointer holds a 14-bit offset: names written later than this cannot be pointed at. */
const pointerOffsetMax = 0x3fff;

class Unreadable extends Error {}

export function compressNames(msg: Buffer): Buffer {
  try {
    return new Compressor(msg).run();
  } catch (err) {
    if (err instanceof Unreadable) return msg;
    throw err;
  }
}

class Compressor {
  private readonly parts: Buffer[] = [];
  private length = 0;
  /**
   * A name's suffix, as its wire form (each label after its length; case kept, so every name reads back exactly as
   * written), to the offset in the output where it starts.
   */
  private readonly written = new Map<string, number>();
  private at = 12;

  constructor(private readonly msg: Buffer) {}

  run(): Buffer {
    const m = this.msg;
    if (m.length < 12) throw new Unreadable();
    this.push(m.subarray(0, 12));
    const questions = m.readUInt16BE(4);
    const records = m.readUInt16BE(6) + m.readUInt16BE(8) + m.readUInt16BE(10);
    for (let i = 0; i < questions; i++) {
      this.writeName(this.readName(), true);
      this.copy(4); // type, class
    }
    for (let i = 0; i < records; i++) this.record();
    if (this.at !== m.length) throw new Unreadable();
    return Buffer.concat(this.parts, this.length);
  }

  private record(): void {
    this.writeName(this.readName(), true);
    const type = this.uint16(this.at);
    this.copy(8); // type, class, ttl
    const dataLength = this.uint16(this.at);
    const dataEnd = this.at + 2 + dataLength;
    if (dataEnd > this.msg.length) throw new Unreadable();
    if (type !== typeNs && type !== typeCname && type !== typePtr && type !== typeSoa && type !== typeSrv) {
      this.copy(2 + dataLength);
      return;
    }
    // The data's length changes: written once the data is.
    const lengthSlot = Buffer.alloc(2);
    this.push(lengthSlot);
    const dataStart = this.length;
    this.at += 2;
    if (type === typeSrv) {
      this.copy(6); // priority, weight, port
      this.writeName(this.readName(), false);
    } else {
      this.writeName(this.readName(), true);
      if (type === typeSoa) {
        this.writeName(this.readName(), true);
        this.copy(20); // serial, refresh, retry, expire, minimum
      }
    }
    if (this.at !== dataEnd) throw new Unreadable();
    lengthSlot.writeUInt16BE(this.length - dataStart, 0);
  }

  /** The labels of the uncompressed name at the read position. */
  private readName(): Buffer[] {
    const labels: Buffer[] = [];
    for (;;) {
      if (this.at >= this.msg.length) throw new Unreadable();
      const n = this.msg[this.at]!;
      this.at++;
      if (n === 0) return labels;
      if (n > 63 || this.at + n > this.msg.length) throw new Unreadable(); // a pointer, or cut short
      labels.push(this.msg.subarray(this.at, this.at + n));
      this.at += n;
    }
  }

  /** Writes a name, ending in a pointer to its longest suffix written before when `compress`; notes its suffixes. */
  private writeName(labels: readonly Buffer[], compress: boolean): void {
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).map((l) => String.fromCharCode(l.length) + l.toString('latin1')).join('');
      const earlier = this.written.get(suffix);
      if (compress && earlier !== undefined) {
        const pointer = Buffer.alloc(2);
        pointer.writeUInt16BE(0xc000 | earlier, 0);
        this.push(pointer);
        return;
      }
      if (earlier === undefined && this.length <= pointerOffsetMax) this.written.set(suffix, this.length);
      this.push(Buffer.from([labels[i]!.length]));
      this.push(labels[i]!);
    }
    this.push(Buffer.from([0]));
  }

  private copy(n: number): void {
    if (this.at + n > this.msg.length) throw new Unreadable();
    this.push(this.msg.subarray(this.at, this.at + n));
    this.at += n;
  }

  private uint16(at: number): number {
    if (at + 2 > this.msg.length) throw new Unreadable();
    return this.msg.readUInt16BE(at);
  }

  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
}
