// A backup file (GET /v1/snapshot, `minkube snapshot save`, scheduled backups): a small self-describing header and the
// same snapshot bytes a manager stores and streams to followers, so a file alone can be verified and restored.
//
//   "MKSNAP\r\n" (8 bytes) | header length (uint32 big-endian) | header (UTF-8 JSON) | body (header.sizeBytes bytes)
//
// The header: { format: 1, index, term, voters, learners, sizeBytes, sha256 (hex of the body), createdAt }.
import { createHash } from 'node:crypto';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, nodeId, term as toTerm } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { SnapshotMeta } from '../raft/types.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { yieldToEventLoop, type YieldFn } from '../kv/sliced-pack.js';
import { decodeSnapshot, type Member } from './members.js';

export const BACKUP_MAGIC = Buffer.from('MKSNAP\r\n', 'latin1');
export const BACKUP_FORMAT = 1;
/** The header is a few hundred bytes; anything far larger is not one of ours. */
const HEADER_BYTES_MAX = 64 * 1024;

export interface BackupHeader {
  readonly format: number;
  /** The applied index the state was taken at, and the term of that entry. */
  readonly index: number;
  readonly term: number;
  /** The Raft configuration as of the index. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Of the body. */
  readonly sizeBytes: number;
  /** Hex sha256 of the body. */
  readonly sha256: string;
  /** ISO 8601, when the manager took it. */
  readonly createdAt: string;
}

export interface ParsedBackup {
  readonly header: BackupHeader;
  /** A manager's snapshot bytes (the address book and the state machine's bytes). */
  readonly body: Uint8Array;
  readonly meta: SnapshotMeta;
}

/** What `minkube snapshot inspect` prints. */
export interface BackupSummary {
  readonly format: number;
  readonly index: number;
  readonly term: number;
  /** The whole file's size. */
  readonly sizeBytes: number;
  /** 'sha256:<hex>' of the whole file, as `sha256sum` says and GET /v1/snapshot's X-Minkube-Checksum (verified: the body's own). */
  readonly checksum: string;
  readonly createdAt: string;
  readonly keys: number;
  readonly tasks: number;
  readonly workers: number;
  /** Voters and learners of the configuration as of the index. */
  readonly members: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes hashed or copied between two yields to the event loop. */
const SLICE_BYTES = 1 << 20;

/** sha256Hex of the parts in order, a MiB at a time with a yield between. */
export async function sha256HexSliced(parts: readonly Uint8Array[], yieldFn: YieldFn = yieldToEventLoop): Promise<string> {
  const hash = createHash('sha256');
  for (const part of parts) {
    for (let at = 0; at < part.length; at += SLICE_BYTES) {
      hash.update(part.subarray(at, at + SLICE_BYTES));
      await yieldFn();
    }
  }
  return hash.digest('hex');
}

function headerBytes(meta: SnapshotMeta, sizeBytes: number, sha256: string, createdAt: string): Buffer {
  const header: BackupHeader = { format: BACKUP_FORMAT, index: meta.index, term: meta.term, voters: [...meta.voters], learners: [...meta.learners], sizeBytes, sha256, createdAt };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([BACKUP_MAGIC, length, json]);
}

/** The file for a snapshot body taken at `meta`. */
export function encodeBackup(meta: SnapshotMeta, body: Uint8Array, createdAt: string): Uint8Array {
  return Buffer.concat([headerBytes(meta, body.length, sha256Hex(body), createdAt), body]);
}

/** encodeBackup's bytes from the body's parts, hashed and copied a MiB at a time with a yield between. */
export async function encodeBackupSliced(meta: SnapshotMeta, body: readonly Uint8Array[], createdAt: string, yieldFn: YieldFn = yieldToEventLoop): Promise<Uint8Array> {
  let sizeBytes = 0;
  for (const part of body) sizeBytes += part.length;
  const head = headerBytes(meta, sizeBytes, await sha256HexSliced(body, yieldFn), createdAt);
  const out = Buffer.allocUnsafeSlow(head.length + sizeBytes);
  out.set(head, 0);
  let at = head.length;
  for (const part of body) {
    for (let from = 0; from < part.length; from += SLICE_BYTES) {
      const slice = part.subarray(from, from + SLICE_BYTES);
      out.set(slice, at);
      at += slice.length;
      await yieldFn();
    }
  }
  return out;
}

function invalid(problem: string): MinkubeError {
  return new MinkubeError('SNAPSHOT_INVALID', problem);
}

/** The header alone (for listing backups without reading their bodies); SNAPSHOT_INVALID when it is not one. */
export function parseBackupHeader(bytes: Uint8Array): { header: BackupHeader; bodyOffset: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < BACKUP_MAGIC.length + 4 || !buf.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) {
    throw invalid('not a Minkube snapshot file (no MKSNAP header; made by `minkube snapshot save`?)');
  }
  const headerBytes = buf.readUInt32BE(BACKUP_MAGIC.length);
  const start = BACKUP_MAGIC.length + 4;
  if (headerBytes > HEADER_BYTES_MAX) throw invalid(`the header claims ${headerBytes} bytes; the file is damaged`);
  if (buf.length < start + headerBytes) throw invalid(`the file is truncated: ${buf.length} bytes, the header alone needs ${start + headerBytes}`);
  let raw: unknown;
  try {
    raw = JSON.parse(buf.subarray(start, start + headerBytes).toString('utf8'));
  } catch {
    throw invalid('the header is not valid JSON; the file is damaged');
  }
  return { header: checkHeader(raw), bodyOffset: start + headerBytes };
}

function checkHeader(raw: unknown): BackupHeader {
  const h = raw as Partial<Record<keyof BackupHeader, unknown>> | null;
  if (typeof h !== 'object' || h === null) throw invalid('the header is not an object');
  if (h.format !== BACKUP_FORMAT) throw invalid(`format ${JSON.stringify(h.format)} is not one this Minkube reads (${BACKUP_FORMAT})`);
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const ids = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);
  const ok =
    count(h.index) && h.index > 0 && count(h.term) && ids(h.voters) && ids(h.learners) && count(h.sizeBytes) && h.sizeBytes <= limits.snapshotBytesMax &&
    typeof h.sha256 === 'string' && /^[0-9a-f]{64}$/.test(h.sha256) && typeof h.createdAt === 'string';
  if (!ok) throw invalid('the header is malformed; the file is damaged');
  return {
    format: h.format, index: h.index as number, term: h.term as number, voters: h.voters as string[], learners: h.learners as string[],
    sizeBytes: h.sizeBytes as number, sha256: h.sha256 as string, createdAt: h.createdAt as string,
  };
}

/** The header and the verified body: SNAPSHOT_INVALID for a truncated, extended or altered file. */
export function parseBackup(bytes: Uint8Array): ParsedBackup {
  const { header, bodyOffset } = parseBackupHeader(bytes);
  const have = bytes.length - bodyOffset;
  if (have < header.sizeBytes) throw invalid(`the file is truncated: its body has ${have} of ${header.sizeBytes} bytes`);
  if (have > header.sizeBytes) throw invalid(`the file has ${have - header.sizeBytes} bytes after its body; it was altered`);
  const body = bytes.subarray(bodyOffset);
  const actual = sha256Hex(body);
  if (actual !== header.sha256) throw invalid(`checksum mismatch: the header says sha256:${header.sha256}, the body is sha256:${actual}; the file was altered or damaged`);
  const meta: SnapshotMeta = {
    index: logIndex(header.index),
    term: toTerm(header.term),
    voters: header.voters.map(nodeId),
    learners: header.learners.map(nodeId),
  };
  return { header, body, meta };
}

/** The body's parts, the state loaded into a fresh state machine (which checks every record). */
export function loadBackup(parsed: ParsedBackup): { members: Member[]; state: Uint8Array; kv: KvStateMachine } {
  let decoded: { members: Member[]; state: Uint8Array };
  const kv = new KvStateMachine();
  try {
    decoded = decodeSnapshot(parsed.body);
    kv.restore(decoded.state);
  } catch (err) {
    throw new MinkubeError('SNAPSHOT_INVALID', `the snapshot's checksum matches but its content does not load: ${(err as Error).message}`, { cause: err });
  }
  // The state may be as of an earlier index than the header's when the entries between are no commands (a leader's
  // no-op, a membership change): files of earlier versions, whose state counted commands only. Never a later one.
  if (kv.appliedIndex > parsed.header.index) throw invalid(`the header says index ${parsed.header.index} but the state was taken at ${kv.appliedIndex}, after it`);
  return { ...decoded, kv };
}

/** Verifies a whole file and counts what it holds. */
export function inspectBackup(bytes: Uint8Array): BackupSummary {
  const parsed = parseBackup(bytes);
  const { kv } = loadBackup(parsed);
  const h = parsed.header;
  return {
    format: h.format, index: h.index, term: h.term, sizeBytes: bytes.length, checksum: `sha256:${sha256Hex(bytes)}`, createdAt: h.createdAt,
    keys: kv.size, tasks: kv.tasks.taskCount, workers: kv.tasks.allWorkers().length, members: h.voters.length + h.learners.length,
    voters: h.voters, learners: h.learners,
  };
}
