// Backups: GET /v1/snapshot's service (a backup file of the applied state at one index, after a linearizable barrier
// so it holds everything acknowledged before the request) and the scheduled backups' files in backup.dir.
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackupService, BackupStatus, RequestContext, SnapshotFile } from '../contracts/services.js';
import type { Clock } from '../lib/clock.js';
import type { SnapshotMeta } from '../raft/types.js';
import { writeFileDurably } from '../storage/snapshot-files.js';
import { backupHeadBytes, encodeBackupSliced, parseBackupHeader, sha256HexSliced } from './backup-file.js';

/** What a backup needs of the Raft driver. */
export interface BackupSource {
  linearizableBarrier(deadlineMs: number): Promise<void>;
  /** The state as of now (one index); its encoding answers the snapshot envelope's bytes, whole or as parts. */
  captureState(): { meta: SnapshotMeta; encode: () => Promise<Uint8Array | readonly Uint8Array[]> };
}

/**
 * The backup file of the state applied now: captured synchronously (one index), then encoded, hashed and joined a MiB
 * at a time, so a state of tens of MiB never holds the loop (it held a leader 0.3 s per backup, past an election
 * timeout). Its header names `clusterId` (a secure cluster's; null for an insecure one), which restore checks.
 */
export async function takeBackup(source: BackupSource, nowMs: number, clusterId: string | null = null): Promise<SnapshotFile & { createdAt: string }> {
  const { meta, encode } = source.captureState();
  const createdAt = new Date(nowMs).toISOString();
  const encoded = await encode();
  const bytes = await encodeBackupSliced(meta, encoded instanceof Uint8Array ? [encoded] : encoded, createdAt, clusterId);
  return { index: meta.index, term: meta.term, sha256: await sha256HexSliced([bytes]), bytes, createdAt };
}

export interface BackupServiceOptions {
  source: () => BackupSource;
  clock: Clock;
  /** Named in each file's header: the cluster CA's organisation; null (the default) for an insecure cluster. */
  clusterId?: string | null;
  /** The scheduled backups' status (null: none configured). */
  status?: () => BackupStatus | null;
}

export class BackupServiceImpl implements BackupService {
  constructor(private readonly o: BackupServiceOptions) {}

  async snapshot(ctx: RequestContext): Promise<SnapshotFile> {
    const source = this.o.source();
    await source.linearizableBarrier(ctx.deadlineMs);
    return takeBackup(source, this.o.clock.nowMs(), this.o.clusterId ?? null);
  }

  status(): BackupStatus | null {
    return this.o.status?.() ?? null;
  }
}

// ---- the files of scheduled backups ----

const PREFIX = 'minkube-snapshot-';
const SUFFIX = '.mksnap';

/** minkube-snapshot-<UTC time>-<index>.mksnap, the name a scheduled backup is written under. */
export function backupFileName(createdAt: string, index: number): string {
  const stamp = createdAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${PREFIX}${stamp}-${String(index).padStart(12, '0')}${SUFFIX}`;
}

/** What backupFileName writes, and nothing else (an index has 12 digits, more past 999,999,999,999). */
const BACKUP_FILE_NAME = /^minkube-snapshot-\d{8}T\d{6}Z-\d{12,16}\.mksnap$/;

/**
 * Whether a file takes part in the scheduled backups' listing. Only names of the exact pattern: a valid backup copied
 * in under another name (`minkube-snapshot-manual.mksnap`, `pre-upgrade.mksnap`) is the operator's, never counted,
 * never the newest, never deleted.
 */
export function isBackupFileName(name: string): boolean {
  return BACKUP_FILE_NAME.test(name);
}

/** A backup as the listing knows it: its name and what its header says. */
export interface ListedBackup {
  readonly name: string;
  readonly createdAt: string;
  readonly index: number;
}

/**
 * Negative when a is newer than b: the higher Raft index, then the later createdAt (by the header, never the name: a
 * name is whatever the file was called, and a wall clock may have stepped). An unreadable createdAt is the oldest.
 */
export function compareBackupsNewerFirst(a: { index: number; createdAt: string }, b: { index: number; createdAt: string }): number {
  if (a.index !== b.index) return b.index - a.index;
  const at = (iso: string): number => {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
  };
  const aMs = at(a.createdAt);
  const bMs = at(b.createdAt);
  return aMs > bMs ? -1 : aMs < bMs ? 1 : 0;
}

/**
 * The backups in `dir` that take part, newest first ([] when the directory does not exist): names of the pattern
 * whose header reads, ranked by their headers (a tie broken by name, so the order is the same on every manager). A
 * file that fails (damaged, cut short, or edited) would otherwise hold a place for good: it is passed over.
 */
export async function listBackups(dir: string): Promise<ListedBackup[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isBackupFileName);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const listed: ListedBackup[] = [];
  for (const name of names) {
    const header = await backupHeaderOf(dir, name);
    if (header !== null) listed.push({ name, ...header });
  }
  // Between two files whose headers say the same, the one named as its header says (a copy renamed: the other) first.
  const misnamed = (b: ListedBackup): number => (b.name === backupFileName(b.createdAt, b.index) ? 0 : 1);
  return listed.sort((a, b) => compareBackupsNewerFirst(a, b) || misnamed(a) - misnamed(b) || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}

/**
 * Writes a backup durably under its name (temp file, fsync, rename) and deletes all but the newest `retain` of the
 * listing. Files the listing passes over are never deleted: they are not known to be ours.
 */
export async function writeBackupFile(dir: string, file: { bytes: Uint8Array; createdAt: string; index: number }, retain: number): Promise<string> {
  const name = backupFileName(file.createdAt, file.index);
  // What an earlier write left when its process died part-way (a failed write removes its own).
  for (const left of await readdir(dir).catch((): string[] => [])) {
    if (left.startsWith(PREFIX) && (left.endsWith('.partial') || left.endsWith('.partial.tmp'))) await unlink(join(dir, left)).catch(() => undefined);
  }
  await writeFileDurably(dir, `${name}.partial`, file.bytes);
  await rename(join(dir, `${name}.partial`), join(dir, name));
  // The file just written always stays, and counts. A file whose header gives a higher index than this state's is of
  // no history this leader has (one left behind by a restore from an older file, or forged): passed over, not ranked
  // above this cluster's own backups until its index is passed.
  const older = (await listBackups(dir)).filter((b) => b.name !== name && b.index <= file.index);
  for (const old of older.slice(Math.max(0, retain - 1))) await unlink(join(dir, old.name)).catch(() => undefined);
  return name;
}

/** What is read of a file first: a header is a few hundred bytes, so most need no second read. */
const HEAD_BYTES_FIRST = 4096;

/**
 * A backup file's header (its time and index), or null when it cannot be read, its digest does not match, or the file
 * is not the size the header announces (cut short or extended): the checks that need no reading of the body.
 */
async function backupHeaderOf(dir: string, name: string): Promise<{ createdAt: string; index: number } | null> {
  try {
    const handle = await open(join(dir, name), 'r');
    try {
      let buf = Buffer.alloc(HEAD_BYTES_FIRST);
      let { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      // Every check reads each listed file's head (up to `retain` and strays): only as much as its header takes.
      const headBytes = backupHeadBytes(buf.subarray(0, bytesRead));
      if (headBytes > bytesRead && bytesRead === buf.length) {
        buf = Buffer.alloc(headBytes);
        ({ bytesRead } = await handle.read(buf, 0, buf.length, 0));
      }
      const { header, bodyOffset } = parseBackupHeader(buf.subarray(0, bytesRead));
      if ((await handle.stat()).size !== bodyOffset + header.sizeBytes) return null;
      return { createdAt: header.createdAt, index: header.index };
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

/** The newest backup of the listing (null when there is none). */
export async function newestBackup(dir: string): Promise<ListedBackup | null> {
  return (await listBackups(dir))[0] ?? null;
}
