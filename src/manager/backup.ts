// Backups: GET /v1/snapshot's service (a backup file of the applied state at one index, after a linearizable barrier
// so it holds everything acknowledged before the request) and the scheduled backups' files in backup.dir.
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackupService, BackupStatus, RequestContext, SnapshotFile } from '../contracts/services.js';
import type { Clock } from '../lib/clock.js';
import type { SnapshotMeta } from '../raft/types.js';
import { writeFileDurably } from '../storage/snapshot-files.js';
import { BACKUP_HEAD_BYTES_MAX, encodeBackupSliced, parseBackupHeader, sha256HexSliced } from './backup-file.js';

/** What a backup needs of the Raft driver. */
export interface BackupSource {
  linearizableBarrier(deadlineMs: number): Promise<void>;
  /** The state as of now (one index); its encoding answers the snapshot envelope's bytes, whole or as parts. */
  captureState(): { meta: SnapshotMeta; encode: () => Promise<Uint8Array | readonly Uint8Array[]> };
}

/**
 * The backup file of the state applied now: captured synchronously (one index), then encoded, hashed and joined a MiB
 * at a time, so a state of tens of MiB never holds the loop (it held a leader 0.3 s per backup, past an election
 * timeout).
 */
export async function takeBackup(source: BackupSource, nowMs: number): Promise<SnapshotFile & { createdAt: string }> {
  const { meta, encode } = source.captureState();
  const createdAt = new Date(nowMs).toISOString();
  const encoded = await encode();
  const bytes = await encodeBackupSliced(meta, encoded instanceof Uint8Array ? [encoded] : encoded, createdAt);
  return { index: meta.index, term: meta.term, sha256: await sha256HexSliced([bytes]), bytes, createdAt };
}

export interface BackupServiceOptions {
  source: () => BackupSource;
  clock: Clock;
  /** The scheduled backups' status (null: none configured). */
  status?: () => BackupStatus | null;
}

export class BackupServiceImpl implements BackupService {
  constructor(private readonly o: BackupServiceOptions) {}

  async snapshot(ctx: RequestContext): Promise<SnapshotFile> {
    const source = this.o.source();
    await source.linearizableBarrier(ctx.deadlineMs);
    return takeBackup(source, this.o.clock.nowMs());
  }

  status(): BackupStatus | null {
    return this.o.status?.() ?? null;
  }
}

// ---- the files of scheduled backups ----

const PREFIX = 'minkube-snapshot-';
const SUFFIX = '.mksnap';

/** snapshot-<UTC time, sortable>-<index>.mksnap: names sort oldest first. */
export function backupFileName(createdAt: string, index: number): string {
  const stamp = createdAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${PREFIX}${stamp}-${String(index).padStart(12, '0')}${SUFFIX}`;
}

export function isBackupFileName(name: string): boolean {
  return name.startsWith(PREFIX) && name.endsWith(SUFFIX);
}

/** Backup files in `dir`, oldest first ([] when the directory does not exist). */
export async function listBackupFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter(isBackupFileName).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Writes a backup durably under its name (temp file, fsync, rename) and deletes all but the newest `retain`. */
export async function writeBackupFile(dir: string, file: { bytes: Uint8Array; createdAt: string; index: number }, retain: number): Promise<string> {
  const name = backupFileName(file.createdAt, file.index);
  // What an earlier write left when its process died part-way (a failed write removes its own).
  for (const left of await readdir(dir).catch((): string[] => [])) {
    if (left.startsWith(PREFIX) && (left.endsWith('.partial') || left.endsWith('.partial.tmp'))) await unlink(join(dir, left)).catch(() => undefined);
  }
  await writeFileDurably(dir, `${name}.partial`, file.bytes);
  await rename(join(dir, `${name}.partial`), join(dir, name));
  // Only backups whose header reads and whose size is the one it announces count towards `retain`: a file that fails
  // (damaged, cut short, or edited and named to sort newest) would otherwise hold a place for good. It is passed over,
  // never deleted: it is not known to be ours.
  // The file just written always stays, and counts: after a step of the clock back it sorts oldest by its name.
  const kept: string[] = [name];
  for (const old of (await listBackupFiles(dir)).reverse()) {
    if (old === name || (await backupHeaderOf(dir, old)) === null) continue;
    if (kept.length < retain) kept.push(old);
    else await unlink(join(dir, old)).catch(() => undefined);
  }
  return name;
}

/**
 * A backup file's header (its time and index), or null when it cannot be read, its digest does not match, or the file
 * is not the size the header announces (cut short or extended): the checks that need no reading of the body.
 */
async function backupHeaderOf(dir: string, name: string): Promise<{ createdAt: string; index: number } | null> {
  try {
    const handle = await open(join(dir, name), 'r');
    try {
      const buf = Buffer.alloc(BACKUP_HEAD_BYTES_MAX);
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
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

/**
 * The newest backup's time and index as its header says (null when there is none or it cannot be read). A header
 * altered since it was written (its digest no longer matches) or a file cut short is passed over, as an unreadable
 * file is.
 */
export async function newestBackup(dir: string): Promise<{ name: string; createdAt: string; index: number } | null> {
  for (const name of (await listBackupFiles(dir)).reverse()) {
    const header = await backupHeaderOf(dir, name);
    if (header !== null) return { name, ...header };
  }
  return null;
}
