// The on-disk layout of LevelRaftStorage: keys that sort by index, and checksummed values in a compact binary form.
// Entry value: crc32 u32 | term u64 | type u8 | data. The crc covers term, index (from the key), type and data, so a
// value copied under another key fails its check too. Hard state value: crc32 u32 | format u8 | term u64 | commit u64
// | vote (UTF-8, empty for none). Meta value: crc32 u32 | bytes. Snapshot value: crc32 u32 | format u8 | index u64 |
// term u64 | size u64 | crc32 of the bytes u32 | { voters, learners } as JSON; the bytes are in a file of their own.
// Salvage notes value: a meta value holding a JSON array of strings.
import { crc32 } from 'node:zlib';
import { logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import type { Entry, EntryType, HardState } from '../raft/types.js';
import type { SnapshotInfo } from './types.js';

const PREFIX_ENTRY = 0x65; // 'e'
const PREFIX_HARD_STATE = 0x68; // 'h'
const PREFIX_META = 0x6d; // 'm'
const PREFIX_NOTES = 0x6e; // 'n'
const PREFIX_SNAPSHOT = 0x73; // 's'
const PREFIX_FORMAT = 0x76; // 'v'

export const FORMAT_VERSION = 1;
export const formatKey = Buffer.from([PREFIX_FORMAT]);
export const hardStateKey = Buffer.from([PREFIX_HARD_STATE]);
/** The current snapshot's record. A directory without one (any written before snapshots existed) has none. */
export const snapshotKey = Buffer.from([PREFIX_SNAPSHOT]);
/**
 * What a salvaging start found wrong and did about it (a database set aside, entries dropped), kept until a start has
 * reported it (in the marker and the recovering reason): a start that fails before that leaves it for the next one.
 */
export const notesKey = Buffer.from([PREFIX_NOTES]);
/** Bounds of the entry key range: every entry key is >= entryKeyMin and < entryKeyEnd. */
export const entryKeyEnd = Buffer.from([PREFIX_ENTRY + 1]);
const ENTRY_KEY_BYTES = 9;
const ENTRY_HEADER_BYTES = 13;
const HARD_STATE_HEADER_BYTES = 21;
const SNAPSHOT_HEADER_BYTES = 33;
const FILE_NUMBER_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits
const TWO_POW_32 = 0x1_0000_0000;

const typeCodes: Record<EntryType, number> = { command: 0, noop: 1, config: 2 };
const typesByCode: readonly EntryType[] = ['command', 'noop', 'config'];

function writeU64(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_POW_32), offset);
  buf.writeUInt32BE(n >>> 0, offset + 4);
}

/** The integer at offset, or -1 when it is not a safe integer. */
function readU64(buf: Buffer, offset: number): number {
  const hi = buf.readUInt32BE(offset);
  if (hi >= 0x20_0000) return -1;
  return hi * TWO_POW_32 + buf.readUInt32BE(offset + 4);
}

/** A prefix byte and the index as 8 big-endian bytes, so LevelDB's byte order is index order. */
export function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(ENTRY_KEY_BYTES);
  key[0] = PREFIX_ENTRY;
  writeU64(key, 1, index);
  return key;
}

/** The index of an entry key, or -1 when the key is not one. */
export function indexOfEntryKey(key: Buffer): number {
  if (key.length !== ENTRY_KEY_BYTES || key[0] !== PREFIX_ENTRY) return -1;
  return readU64(key, 1);
}

/** The end of the meta key range (metaKey('') is its start). */
export const metaKeyEnd = Buffer.from([PREFIX_META + 1]);

export function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.from([PREFIX_META]), Buffer.from(name, 'utf8')]);
}

const checksumHeader = Buffer.alloc(17);

function entryChecksum(termValue: number, index: number, typeCode: number, data: Uint8Array): number {
  writeU64(checksumHeader, 0, termValue);
  writeU64(checksumHeader, 8, index);
  checksumHeader[16] = typeCode;
  const headerCrc = crc32(checksumHeader);
  // zlib.crc32 answers 0 for an empty view over a zero-length ArrayBuffer instead of passing the running value on.
  return data.length === 0 ? headerCrc : crc32(data, headerCrc);
}

export function encodeEntry(e: Entry): Buffer {
  const code = typeCodes[e.type];
  const value = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + e.data.length);
  value.writeUInt32BE(entryChecksum(e.term, e.index, code, e.data), 0);
  writeU64(value, 4, e.term);
  value[12] = code;
  value.set(e.data, ENTRY_HEADER_BYTES);
  return value;
}

/** The entry stored at `index`, or the reason its value is corrupt. */
export function decodeEntry(index: number, value: Buffer): Entry | string {
  if (value.length < ENTRY_HEADER_BYTES) return `the value is truncated (${value.length} bytes)`;
  const termValue = readU64(value, 4);
  if (termValue < 0) return 'the term is out of range';
  const code = value[12]!;
  const type = typesByCode[code];
  if (type === undefined) return `unknown entry type ${code}`;
  const data = new Uint8Array(value.subarray(ENTRY_HEADER_BYTES));
  if (entryChecksum(termValue, index, code, data) !== value.readUInt32BE(0)) return 'checksum mismatch';
  return { term: term(termValue), index: logIndex(index), type, data };
}

export function encodeHardState(hs: HardState): Buffer {
  const vote = hs.vote === null ? Buffer.alloc(0) : Buffer.from(hs.vote, 'utf8');
  const value = Buffer.allocUnsafe(HARD_STATE_HEADER_BYTES + vote.length);
  value[4] = FORMAT_VERSION;
  writeU64(value, 5, hs.term);
  writeU64(value, 13, hs.commit);
  vote.copy(value, HARD_STATE_HEADER_BYTES);
  value.writeUInt32BE(crc32(value.subarray(4)), 0);
  return value;
}

export function decodeHardState(value: Buffer): HardState | string {
  if (value.length < HARD_STATE_HEADER_BYTES) return `the value is truncated (${value.length} bytes)`;
  if (crc32(value.subarray(4)) !== value.readUInt32BE(0)) return 'checksum mismatch';
  if (value[4] !== FORMAT_VERSION) return `unknown format ${value[4]}`;
  const termValue = readU64(value, 5);
  const commit = readU64(value, 13);
  if (termValue < 0 || commit < 0) return 'the term or commit is out of range';
  const vote = value.length === HARD_STATE_HEADER_BYTES ? null : nodeId(value.toString('utf8', HARD_STATE_HEADER_BYTES));
  return { term: term(termValue), vote, commit: logIndex(commit) };
}

export function encodeMeta(bytes: Uint8Array): Buffer {
  const value = Buffer.allocUnsafe(4 + bytes.length);
  value.writeUInt32BE(crc32(bytes), 0);
  value.set(bytes, 4);
  return value;
}

export function decodeMeta(value: Buffer): Uint8Array | string {
  if (value.length < 4) return `the value is truncated (${value.length} bytes)`;
  const bytes = new Uint8Array(value.subarray(4));
  return crc32(bytes) === value.readUInt32BE(0) ? bytes : 'checksum mismatch';
}

export function encodeNotes(notes: readonly string[]): Buffer {
  return encodeMeta(Buffer.from(JSON.stringify(notes), 'utf8'));
}

/** The notes, or why they cannot be read. */
export function decodeNotes(value: Buffer): string[] | string {
  const bytes = decodeMeta(value);
  if (typeof bytes === 'string') return bytes;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'not JSON';
  }
  return Array.isArray(parsed) && parsed.every((n) => typeof n === 'string') ? parsed : 'not a list of strings';
}

/** The snapshot's file name: zero-padded term and index, so names sort as snapshots do. */
export function snapshotFileName(info: SnapshotInfo): string {
  const pad = (n: number): string => String(n).padStart(FILE_NUMBER_DIGITS, '0');
  return `${pad(info.meta.term)}-${pad(info.meta.index)}.snap`;
}

export function encodeSnapshot(info: SnapshotInfo): Buffer {
  const conf = Buffer.from(JSON.stringify({ voters: info.meta.voters, learners: info.meta.learners }), 'utf8');
  const value = Buffer.allocUnsafe(SNAPSHOT_HEADER_BYTES + conf.length);
  value[4] = FORMAT_VERSION;
  writeU64(value, 5, info.meta.index);
  writeU64(value, 13, info.meta.term);
  writeU64(value, 21, info.sizeBytes);
  value.writeUInt32BE(info.crc32, 29);
  conf.copy(value, SNAPSHOT_HEADER_BYTES);
  value.writeUInt32BE(crc32(value.subarray(4)), 0);
  return value;
}

export function decodeSnapshot(value: Buffer): SnapshotInfo | string {
  if (value.length < SNAPSHOT_HEADER_BYTES) return `the value is truncated (${value.length} bytes)`;
  if (crc32(value.subarray(4)) !== value.readUInt32BE(0)) return 'checksum mismatch';
  if (value[4] !== FORMAT_VERSION) return `unknown format ${value[4]}`;
  const index = readU64(value, 5);
  const termValue = readU64(value, 13);
  const sizeBytes = readU64(value, 21);
  if (index < 0 || termValue < 0 || sizeBytes < 0) return 'the index, term or size is out of range';
  const conf = parseConf(value.toString('utf8', SNAPSHOT_HEADER_BYTES));
  if (conf === null) return 'the configuration is malformed';
  const meta = { index: logIndex(index), term: term(termValue), ...conf };
  return { meta, sizeBytes, crc32: value.readUInt32BE(29) };
}

function parseConf(json: string): { voters: NodeId[]; learners: NodeId[] } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return null;
  }
  const { voters, learners } = (parsed ?? {}) as { voters?: unknown; learners?: unknown };
  const ids = (v: unknown): NodeId[] | null =>
    Array.isArray(v) && v.every((id) => typeof id === 'string') ? v.map((id: string) => nodeId(id)) : null;
  const v = ids(voters);
  const l = ids(learners);
  return v === null || l === null ? null : { voters: v, learners: l };
}
