// A backup file (GET /v1/snapshot, `minkube snapshot save`, scheduled backups): a small self-describing header and the
// same snapshot bytes a manager stores and streams to followers, so a file alone can be verified and restored.
//
//   "MKSNAP\r\n" (8 bytes) | header length (uint32 big-endian) | header (UTF-8 JSON) | header digest (32 bytes) | body
//
// The header: { format: 2, index, term, voters, learners, sizeBytes, sha256 (hex of the body), createdAt, and
// clusterId when a secure cluster wrote it (its CA's organisation; restore compares it with the target cluster's) }.
// The digest is the sha256 of every byte before it (magic, length, header): it covers each field of the header, and
// through the header's sha256 the body, so no byte of the file can change unnoticed, and the header alone verifies
// without the body. Files without clusterId (earlier builds', insecure clusters') are read as before. commandVersion:
// the command version of the manager that wrote it (absent from earlier builds' files, which count as 10): a manager
// that understands less refuses to restore or inspect it, saying so, as it would stop on the entries that made it.
// Still format 2: a field added to the header leaves the file readable by every build that reads format 2.
// Format 1 (earlier builds) has no digest: its files are still read, never written, and say their header is unverified.
import { createHash } from 'node:crypto';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, nodeId, term as toTerm, type NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { SnapshotMeta } from '../raft/types.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { commandVersion } from '../kv/commands.js';
import { yieldToEventLoop, type YieldFn } from '../kv/sliced-pack.js';
import { decodeSnapshot, type Member } from './members.js';

export const BACKUP_MAGIC = Buffer.from('MKSNAP\r\n', 'latin1');
/** The format this build writes. */
export const BACKUP_FORMAT = 2;
/** Earlier builds' files: no header digest, so only the body's checksum is verified. */
const BACKUP_FORMAT_UNDIGESTED = 1;
/** The header is a few hundred bytes; anything far larger is not one of ours. */
const HEADER_BYTES_MAX = 64 * 1024;
const HEADER_DIGEST_BYTES = 32;
/** Enough of a file's start to hold any header and its digest (what listing backups reads of each). */
export const BACKUP_HEAD_BYTES_MAX = BACKUP_MAGIC.length + 4 + HEADER_BYTES_MAX + HEADER_DIGEST_BYTES;

/** How many bytes of a file's start hold its header and the digest after it, told by its first 12 (at most BACKUP_HEAD_BYTES_MAX). */
export function backupHeadBytes(start: Uint8Array): number {
  const lengthEnd = BACKUP_MAGIC.length + 4;
  if (start.length < lengthEnd) return start.length;
  const headerBytes = Buffer.from(start.buffer, start.byteOffset, start.length).readUInt32BE(BACKUP_MAGIC.length);
  return Math.min(lengthEnd + headerBytes + HEADER_DIGEST_BYTES, BACKUP_HEAD_BYTES_MAX);
}

export interface BackupHeader {
  readonly format: typeof BACKUP_FORMAT | typeof BACKUP_FORMAT_UNDIGESTED;
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
  /** The cluster that wrote it (its CA's O=); absent from an insecure cluster's file and from earlier builds'. */
  readonly clusterId?: string;
  /** The command version of the manager that wrote it; absent from the files of builds before the field (10). */
  readonly commandVersion?: number;
}

export interface ParsedBackup {
  readonly header: BackupHeader;
  /** The header matched its digest (format 2); false for a format-1 file, whose header is taken as written. */
  readonly headerVerified: boolean;
  /** A manager's snapshot bytes (the address book and the state machine's bytes). */
  readonly body: Uint8Array;
  readonly meta: SnapshotMeta;
}

/** What `minkube snapshot inspect` prints. */
export interface BackupSummary {
  readonly format: number;
  /** As ParsedBackup's: false for a format-1 file, whose index, term, members and createdAt nothing verifies. */
  readonly headerVerified: boolean;
  readonly index: number;
  readonly term: number;
  /** The whole file's size. */
  readonly sizeBytes: number;
  /** 'sha256:<hex>' of the whole file, as `sha256sum` says and GET /v1/snapshot's X-Minkube-Checksum (verified: the body's own). */
  readonly checksum: string;
  readonly createdAt: string;
  /** The header's clusterId; null when the file names no cluster (an insecure cluster's, or an earlier build's). */
  readonly clusterId: string | null;
  /** The header's commandVersion; null for an earlier build's file. */
  readonly commandVersion: number | null;
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

function headerBytes(meta: SnapshotMeta, sizeBytes: number, sha256: string, createdAt: string, clusterId: string | null): Buffer {
  const header: BackupHeader = {
    format: BACKUP_FORMAT, index: meta.index, term: meta.term, voters: [...meta.voters], learners: [...meta.learners], sizeBytes, sha256, createdAt,
    ...(clusterId === null ? {} : { clusterId }), commandVersion,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  const head = Buffer.concat([BACKUP_MAGIC, length, json]);
  return Buffer.concat([head, createHash('sha256').update(head).digest()]);
}

/** The file for a snapshot body taken at `meta` by the cluster `clusterId` (null: an insecure cluster, which has none). */
export function encodeBackup(meta: SnapshotMeta, body: Uint8Array, createdAt: string, clusterId: string | null = null): Uint8Array {
  return Buffer.concat([headerBytes(meta, body.length, sha256Hex(body), createdAt, clusterId), body]);
}

/** encodeBackup's bytes from the body's parts, hashed and copied a MiB at a time with a yield between. */
export async function encodeBackupSliced(
  meta: SnapshotMeta, body: readonly Uint8Array[], createdAt: string, clusterId: string | null, yieldFn: YieldFn = yieldToEventLoop,
): Promise<Uint8Array> {
  let sizeBytes = 0;
  for (const part of body) sizeBytes += part.length;
  const head = headerBytes(meta, sizeBytes, await sha256HexSliced(body, yieldFn), createdAt, clusterId);
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

/**
 * The header alone (for listing backups without reading their bodies), verified against its digest when the file has
 * one (format 2); SNAPSHOT_INVALID when it is not a header or was altered.
 */
export function parseBackupHeader(bytes: Uint8Array): { header: BackupHeader; headerVerified: boolean; bodyOffset: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const magicHere = buf.subarray(0, BACKUP_MAGIC.length);
  if (!magicHere.equals(BACKUP_MAGIC.subarray(0, magicHere.length)) || magicHere.length === 0) {
    throw invalid('not a Minkube snapshot file (no MKSNAP header; made by `minkube snapshot save`?)');
  }
  // The magic, or what there is of it, is there: the file was cut inside its first bytes.
  if (buf.length < BACKUP_MAGIC.length + 4) throw invalid(`the file is truncated: ${buf.length} bytes, cut inside its header`);
  const headerBytes = buf.readUInt32BE(BACKUP_MAGIC.length);
  const start = BACKUP_MAGIC.length + 4;
  if (headerBytes > HEADER_BYTES_MAX) throw invalid(`the header claims ${headerBytes} bytes; the file is damaged`);
  const headerEnd = start + headerBytes;
  if (buf.length < headerEnd) throw invalid(`the file is truncated: ${buf.length} bytes, the header alone needs ${headerEnd}`);
  let raw: unknown;
  try {
    raw = JSON.parse(buf.subarray(start, headerEnd).toString('utf8'));
  } catch {
    throw invalid('the header is not valid JSON; the file is damaged');
  }
  // The format is read before the digest is checked: it says whether there is one. A format-2 file whose format was
  // edited to 1 is refused all the same, its digest then being 32 bytes past the body.
  const format = (raw as { format?: unknown } | null)?.format;
  if (format === BACKUP_FORMAT_UNDIGESTED) return { header: checkHeader(raw, format), headerVerified: false, bodyOffset: headerEnd };
  if (format !== BACKUP_FORMAT) throw invalid(`format ${JSON.stringify(format)} is not one this Minkube reads (${BACKUP_FORMAT_UNDIGESTED} or ${BACKUP_FORMAT})`);
  const bodyOffset = headerEnd + HEADER_DIGEST_BYTES;
  if (buf.length < bodyOffset) throw invalid(`the file is truncated: ${buf.length} bytes, the header and its checksum need ${bodyOffset}`);
  const said = buf.subarray(headerEnd, bodyOffset).toString('hex');
  const actual = createHash('sha256').update(buf.subarray(0, headerEnd)).digest('hex');
  if (said !== actual) {
    throw invalid(`header checksum mismatch: the file says sha256:${said}, its header is sha256:${actual}; the header (index, term, members, createdAt or the body's checksum) was altered or damaged`);
  }
  return { header: checkHeader(raw, format), headerVerified: true, bodyOffset };
}

/** A cluster id as a CA's organisation holds one (security/ca.ts assertName): printable, no separators, bounded. */
const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The header's fields, of a file whose format was read as `format`. */
function checkHeader(raw: unknown, format: BackupHeader['format']): BackupHeader {
  const h = raw as Partial<Record<keyof BackupHeader, unknown>> | null;
  if (typeof h !== 'object' || h === null) throw invalid('the header is not an object');
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const ids = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);
  const ok =
    count(h.index) && h.index > 0 && count(h.term) && ids(h.voters) && ids(h.learners) && count(h.sizeBytes) && h.sizeBytes <= limits.snapshotBytesMax &&
    typeof h.sha256 === 'string' && /^[0-9a-f]{64}$/.test(h.sha256) && typeof h.createdAt === 'string' &&
    (h.clusterId === undefined || (typeof h.clusterId === 'string' && CLUSTER_ID.test(h.clusterId))) &&
    (h.commandVersion === undefined || (count(h.commandVersion) && h.commandVersion >= 1));
  if (!ok) throw invalid('the header is malformed; the file is damaged');
  return {
    format, index: h.index as number, term: h.term as number, voters: h.voters as string[], learners: h.learners as string[],
    sizeBytes: h.sizeBytes as number, sha256: h.sha256 as string, createdAt: h.createdAt as string,
    ...(h.clusterId === undefined ? {} : { clusterId: h.clusterId as string }),
    ...(h.commandVersion === undefined ? {} : { commandVersion: h.commandVersion as number }),
  };
}

/** The header and the verified body: SNAPSHOT_INVALID for a truncated, extended or altered file. */
export function parseBackup(bytes: Uint8Array): ParsedBackup {
  const { header, headerVerified, bodyOffset } = parseBackupHeader(bytes);
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
  return { header, headerVerified, body, meta };
}

/** The body's parts, the state loaded into a fresh state machine (which checks every record). */
export function loadBackup(parsed: ParsedBackup): { members: Member[]; removed: [NodeId, number][]; state: Uint8Array; kv: KvStateMachine } {
  const newer = parsed.header.commandVersion;
  if (newer !== undefined && newer > commandVersion) {
    throw new MinkubeError('SNAPSHOT_INVALID', `the snapshot was made by a manager of command version ${newer}; this one understands ${commandVersion}: restore it with a newer build (minkube --version says a build's command version)`, { details: { commandVersion: newer } });
  }
  let decoded: ReturnType<typeof decodeSnapshot>;
  const kv = new KvStateMachine();
  try {
    decoded = decodeSnapshot(parsed.body);
    kv.restore(decoded.state);
  } catch (err) {
    throw new MinkubeError('SNAPSHOT_INVALID', `the snapshot's checksum matches but its content does not load: ${(err as Error).message}`, { cause: err });
  }
  // What the body says of itself, against the header: its state's applied index. That may be earlier than the header's
  // when the entries between are no commands (a leader's no-op, a membership change) and the state came from an
  // earlier version's snapshot, which counted commands only; never later. The body carries no term and no
  // configuration (its address book is every address the node learned, not the members), so those rest on the digest.
  if (kv.appliedIndex > parsed.header.index) throw invalid(`the header says index ${parsed.header.index} but the state was taken at ${kv.appliedIndex}, after it`);
  return { ...decoded, kv };
}

/** Verifies a whole file and counts what it holds. */
export function inspectBackup(bytes: Uint8Array): BackupSummary {
  const parsed = parseBackup(bytes);
  const { kv } = loadBackup(parsed);
  const h = parsed.header;
  return {
    format: h.format, headerVerified: parsed.headerVerified, index: h.index, term: h.term, sizeBytes: bytes.length, checksum: `sha256:${sha256Hex(bytes)}`, createdAt: h.createdAt,
    clusterId: h.clusterId ?? null, commandVersion: h.commandVersion ?? null,
    keys: kv.size, tasks: kv.tasks.taskCount, workers: kv.tasks.allWorkers().length, members: h.voters.length + h.learners.length,
    voters: h.voters, learners: h.learners,
  };
}
