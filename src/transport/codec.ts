// The wire format between managers: a 4-byte big-endian length, then a msgpack payload holding a versioned envelope
// ({ v: 1, kind: 'hello', from, to } first on a connection, then { v: 1, kind: 'raft', messages }). Everything read
// from a peer is validated here, field by field, before it can reach the Raft core.
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { Entry, EntryType, Message } from '../raft/types.js';

export const WIRE_VERSION = 1;
const LENGTH_BYTES = 4;
/** Node ids are at most 64 characters in the cluster config; the wire allows some slack, not megabytes. */
const ID_CHARS_MAX = 256;
const CONTEXT_CHARS_MAX = 4096;

export interface HelloFrame {
  readonly v: typeof WIRE_VERSION;
  readonly kind: 'hello';
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's Raft address (host:port), so a node that does not know it can answer it (older peers omit it). */
  readonly addr?: string;
  /**
   * A knock: "dial me". Sent by a node that waits to be dialed (its id is the larger) and has not been for a while:
   * the receiver may not know it. The connection closes right after; older peers take it as a hello.
   */
  readonly knock?: boolean;
}

export interface RaftFrame {
  readonly v: typeof WIRE_VERSION;
  readonly kind: 'raft';
  readonly messages: readonly Message[];
}

export type Frame = HelloFrame | RaftFrame;

// msgpackr records without shared structures: each frame carries its own record definitions, so it decodes on its
// own, and decoding is about twice as fast as plain maps (bench/transport.ts). Plain maps are accepted too.
const packr = new Packr({ useRecords: true });
// copyBuffers: entry data must not keep a whole received frame alive for as long as the entry sits in the log.
const unpackr = new Unpackr({ useRecords: true, mapsAsObjects: true, copyBuffers: true });

/** The frame's bytes, length prefix included (msgpackr reserves the 4 bytes, so the payload is not copied). */
export function encodeFrame(frame: Frame): Buffer {
  const buf = packr.pack(frame, RESERVE_START_SPACE | LENGTH_BYTES);
  buf.writeUInt32BE(buf.length - LENGTH_BYTES, 0);
  return buf;
}

/** The payload's length, once encoded. */
export const payloadBytes = (frameBytes: Buffer): number => frameBytes.length - LENGTH_BYTES;

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/**
 * Splits a byte stream into frame payloads. It handles frames split over chunks and many frames per chunk, and
 * rejects a declared length over the limit as soon as the 4 length bytes arrive, before buffering the body. The
 * first frame may have a tighter limit (firstFrameBytesMax: a listener's bound on a hello, from a caller not known
 * yet). Frames behind it in the same chunk are held to frameBytesMax, so the caller accepts or drops the connection
 * on the first frame before it pushes another chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The payload length of the frame being read, or -1 while its length is not read yet. */
  private need = -1;
  private first = true;

  constructor(
    private readonly frameBytesMax: number,
    private readonly firstFrameBytesMax = frameBytesMax,
  ) {}

  /** Bytes received that do not make a whole frame yet (non-zero at the end of a stream: a truncated frame). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The payloads this chunk completes. Throws FrameError on a length of 0 or over the limit. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const payloads: Buffer[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < LENGTH_BYTES) break;
        const length = this.take(LENGTH_BYTES).readUInt32BE(0);
        const max = this.first ? this.firstFrameBytesMax : this.frameBytesMax;
        if (length > max) throw new FrameError(`a ${this.first && max < this.frameBytesMax ? 'first ' : ''}frame declares ${length} bytes, over the limit of ${max}`);
        if (length === 0) throw new FrameError('an empty frame');
        this.need = length;
      }
      if (this.buffered < this.need) break;
      payloads.push(this.take(this.need));
      this.need = -1;
      this.first = false;
    }
    return payloads;
  }

  /** Removes n buffered bytes; copies only when they span chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    while (offset < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - offset);
      c.copy(out, offset, 0, k);
      offset += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** Decodes and validates one payload: a frame, or the reason it is unacceptable. */
export function decodePayload(payload: Buffer): Frame | string {
  let value: unknown;
  try {
    value = unpackr.unpack(payload);
  } catch (err) {
    return `undecodable payload: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (!isRecord(value)) return 'the payload is not a map';
  if (value.v !== WIRE_VERSION) return `unsupported wire version ${JSON.stringify(value.v)}`;
  switch (value.kind) {
    case 'hello': {
      const f = new Fields(value, 'hello');
      const hello: HelloFrame = { v: WIRE_VERSION, kind: 'hello', from: f.id('from'), to: f.id('to') };
      if (value.addr !== undefined && !(typeof value.addr === 'string' && value.addr.length > 0 && value.addr.length <= ID_CHARS_MAX)) return 'hello.addr: expected a host:port string';
      if (value.knock !== undefined && typeof value.knock !== 'boolean') return 'hello.knock: expected a boolean';
      return f.error ?? { ...hello, ...(value.addr === undefined ? {} : { addr: value.addr as string }), ...(value.knock === true ? { knock: true } : {}) };
    }
    case 'raft': {
      if (!Array.isArray(value.messages)) return 'raft.messages: expected an array';
      const messages: Message[] = [];
      for (let i = 0; i < value.messages.length; i++) {
        const m = validateMessage(value.messages[i]);
        if (typeof m === 'string') return `messages[${i}]: ${m}`;
        messages.push(m);
      }
      return { v: WIRE_VERSION, kind: 'raft', messages };
    }
    default:
      return `unknown frame kind ${JSON.stringify(value.kind)}`;
  }
}

/** A rough size of a message on the wire, for the byte bound of send queues. */
export function estimateMessageBytes(m: Message): number {
  let bytes = 96;
  if (m.type === 'append') for (const e of m.entries) bytes += 40 + e.data.length;
  else if (m.type === 'propose') for (const d of m.entries) bytes += 8 + d.length;
  else if ('context' in m) bytes += m.context.length;
  return bytes;
}

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array) && !(x instanceof Map);

/** A short, safe description of an untrusted value for an error message. */
function show(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 40));
  if (typeof v === 'object' && v !== null) return 'a map';
  return String(v);
}

const entryTypes: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

/** Reads typed fields off an untrusted map, remembering the first problem instead of throwing. */
class Fields {
  error: string | null = null;

  constructor(
    private readonly o: Record<string, unknown>,
    private readonly where: string,
  ) {}

  fail(field: string, expected: string): void {
    if (this.error !== null) return;
    this.error = `${this.where}.${field}: expected ${expected}, got ${show(this.o[field])}`;
  }

  id(field: string): NodeId {
    const v = this.o[field];
    if (typeof v === 'string' && v.length > 0 && v.length <= ID_CHARS_MAX) return v as NodeId;
    this.fail(field, `a non-empty string of at most ${ID_CHARS_MAX} characters`);
    return '' as NodeId;
  }

  /** A non-negative safe integer (terms, indexes). */
  int<T extends number>(field: string): T {
    const v = this.o[field];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v as T;
    this.fail(field, 'a non-negative safe integer');
    return 0 as T;
  }

  bool(field: string): boolean {
    const v = this.o[field];
    if (typeof v === 'boolean') return v;
    this.fail(field, 'a boolean');
    return false;
  }

  /** An optional non-negative safe integer: `{ [field]: n }`, or `{}` when absent. */
  optInt<K extends string, T extends number = number>(field: K): { [P in K]?: T } {
    if (this.o[field] === undefined) return {};
    return { [field]: this.int<T>(field) } as { [P in K]?: T };
  }

  /** An optional flag: `{ [field]: true }` when it is set, `{}` when absent or false (older peers never send it). */
  flag<K extends string>(field: K): { [P in K]?: true } {
    const v = this.o[field];
    if (v === undefined || v === false) return {};
    if (v === true) return { [field]: true } as { [P in K]?: true };
    this.fail(field, 'a boolean');
    return {};
  }

  context(field: string): string {
    const v = this.o[field];
    if (typeof v === 'string' && v.length <= CONTEXT_CHARS_MAX) return v;
    this.fail(field, `a string of at most ${CONTEXT_CHARS_MAX} characters`);
    return '';
  }

  entries(field: string): Entry[] {
    const v = this.o[field];
    if (!Array.isArray(v)) {
      this.fail(field, 'an array of entries');
      return [];
    }
    const out: Entry[] = [];
    for (let i = 0; i < v.length && this.error === null; i++) {
      const raw: unknown = v[i];
      if (!isRecord(raw)) {
        this.fail(field, `an entry at [${i}]`);
        break;
      }
      const f = new Fields(raw, `${this.where}.${field}[${i}]`);
      const type = raw.type;
      if (typeof type !== 'string' || !entryTypes.has(type)) f.fail('type', 'command, noop or config');
      if (!(raw.data instanceof Uint8Array)) f.fail('data', 'bytes');
      out.push({ term: f.int('term'), index: f.int('index'), type: type as EntryType, data: raw.data as Uint8Array });
      this.error = f.error;
    }
    return out;
  }

  blobs(field: string): Uint8Array[] {
    const v = this.o[field];
    if (Array.isArray(v) && v.every((d) => d instanceof Uint8Array)) return v as Uint8Array[];
    this.fail(field, 'an array of bytes');
    return [];
  }
}

/** The message, rebuilt from its known fields only, or the reason it is invalid. */
export function validateMessage(x: unknown): Message | string {
  if (!isRecord(x)) return 'a message must be a map';
  const type = x.type;
  if (typeof type !== 'string') return 'message.type: expected a string';
  const f = new Fields(x, type);
  const base = { from: f.id('from'), to: f.id('to'), term: f.int<Message['term']>('term') };
  const m = buildMessage(type, f, base);
  if (f.error !== null) return f.error;
  if (m === null) return `unknown message type ${JSON.stringify(type).slice(0, 80)}`;
  return m.type === 'append' ? (checkAppendShape(m) ?? m) : m;
}

type Base = Pick<Message, 'from' | 'to' | 'term'>;

function buildMessage(type: string, f: Fields, base: Base): Message | null {
  switch (type) {
    case 'append':
      return { type, ...base, prevLogIndex: f.int('prevLogIndex'), prevLogTerm: f.int('prevLogTerm'), entries: f.entries('entries'), commit: f.int('commit') };
    case 'appendResponse':
      return { type, ...base, success: f.bool('success'), index: f.int('index'), conflictTerm: f.int('conflictTerm'), conflictIndex: f.int('conflictIndex'), ...f.optInt('incarnation'), ...f.flag('recovering') };
    case 'heartbeat':
      return { type, ...base, commit: f.int('commit'), context: f.context('context') };
    case 'heartbeatResponse':
      return { type, ...base, context: f.context('context'), ...f.optInt('incarnation'), ...f.flag('recovering') };
    case 'vote':
      return { type, ...base, preVote: f.bool('preVote'), lastLogIndex: f.int('lastLogIndex'), lastLogTerm: f.int('lastLogTerm'), transfer: f.bool('transfer'), ...f.optInt<'configIndex', LogIndex>('configIndex'), ...f.optInt<'configTerm', Term>('configTerm') };
    case 'voteResponse':
      return { type, ...base, preVote: f.bool('preVote'), granted: f.bool('granted'), ...f.flag('recovering') };
    case 'timeoutNow':
      return { type, ...base };
    case 'propose':
      return { type, ...base, entries: f.blobs('entries') };
    case 'readIndex':
      return { type, ...base, context: f.context('context') };
    case 'readIndexResponse':
      return { type, ...base, context: f.context('context'), index: f.int('index') };
    default:
      return null;
  }
}

/**
 * What every append from a correct leader satisfies, and the core relies on: entries contiguous from prevLogIndex + 1,
 * terms that never decrease, from at least prevLogTerm up to at most the message's term.
 */
function checkAppendShape(m: Extract<Message, { type: 'append' }>): string | null {
  if (m.prevLogTerm > m.term) return `append: prevLogTerm ${m.prevLogTerm} is above the term ${m.term}`;
  let prevTerm: number = m.prevLogTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    if (e.index !== m.prevLogIndex + 1 + i) return `append.entries[${i}]: index ${e.index}, expected ${m.prevLogIndex + 1 + i}`;
    if (e.term < prevTerm || e.term > m.term) return `append.entries[${i}]: term ${e.term} is outside [${prevTerm}, ${m.term}]`;
    prevTerm = e.term;
  }
  return null;
}
