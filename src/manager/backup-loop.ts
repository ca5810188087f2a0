// Scheduled backups (config `backup { intervalS, retain, dir }`): the leader writes a backup file into backup.dir once
// the newest there (by its header's Raft index, then createdAt) is intervalS old, and keeps the newest `retain`
// (listBackups in backup.ts says which files take part). Every manager looks at the directory on the same
// beat, so GET /v1/cluster's `backup` says the same wherever the directory is shared, and a new leader carries on the
// old one's schedule instead of writing at once.
import type { Logger } from 'pino';
import type { BackupConfig } from '../config/cluster.js';
import type { BackupService, BackupStatus } from '../contracts/services.js';
import { LocalDueTimes, type Clock } from '../lib/clock.js';
import { errnoReason } from '../lib/errno.js';
import { BackupServiceImpl, compareBackupsNewerFirst, newestBackup, takeBackup, writeBackupFile, type BackupSource } from './backup.js';

/** What a refusal means for backup.dir (Node's mkdir says EEXIST, ENOTDIR for a file in the way). */
const backupDirReasons: Readonly<Record<string, string>> = {
  EEXIST: 'a file that is not a directory stands there (backup.dir must name a directory, or nothing yet)',
  ENOTDIR: 'a file stands where backup.dir or one of its parent directories should be',
};

/** A check at least this often, so a new leader or a failed write does not wait a whole long interval. */
const CHECK_INTERVAL_MS_MAX = 10_000;

export interface BackupLoopOptions {
  config: BackupConfig;
  source: () => BackupSource;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  /** Named in each file's header (null, the default: an insecure cluster). */
  clusterId?: string | null;
  /** Told of each backup written (metrics). */
  onSuccess?: (status: BackupStatus) => void;
}

export class BackupLoop {
  private state: BackupStatus = { lastSuccessAt: null, lastIndex: null, lastError: null };
  private timer: { cancel(): void } | null = null;
  private busy = false;
  private closed = false;
  /** The next backup's time (the newest file's plus the interval) as this manager waits on it: see due(). */
  private readonly next: LocalDueTimes;
  /** clock.monoMs() when this manager last wrote a backup: the next comes an interval later, whatever the names say. */
  private writtenMonoMs: number | null = null;

  constructor(private readonly o: BackupLoopOptions) {
    this.next = new LocalDueTimes(o.clock, 1);
  }

  get status(): BackupStatus {
    return this.state;
  }

  get checkIntervalMs(): number {
    return Math.min(this.o.config.intervalS * 1000, CHECK_INTERVAL_MS_MAX);
  }

  start(): void {
    this.schedule(0);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = this.o.clock.setTimeout(() => void this.check().finally(() => this.schedule(this.checkIntervalMs)), delayMs);
  }

  /** One look: the directory's newest file, then (leader only) a new backup when that one is an interval old. */
  async check(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      await this.refresh();
      if (!this.o.isLeader() || !this.due()) return;
      await this.write();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Whether the newest backup is an interval old. Its time is a wall time (in the file), measured against this
   * manager's wall clock once and then counted on the monotonic one, never more than an interval: a step of the wall
   * clock back does not put the next backup off for the length of the step.
   */
  private due(): boolean {
    const intervalMs = this.o.config.intervalS * 1000;
    // A newest file dated in this manager's future (its clock stepped back) would otherwise be due at every check.
    if (this.writtenMonoMs !== null && this.o.clock.monoMs() - this.writtenMonoMs < intervalMs) return false;
    if (this.state.lastSuccessAt === null) return true;
    return this.next.remainingMs('next', Date.parse(this.state.lastSuccessAt) + intervalMs, intervalMs) === 0;
  }

  private async refresh(): Promise<void> {
    try {
      // The newest as the headers rank it (index, then createdAt), never by name: a file named in the far future is
      // ranked by what it holds, and neither sets the next backup's time nor stands in for the newest in the status.
      const newest = await newestBackup(this.o.config.dir);
      const { lastSuccessAt, lastIndex } = this.state;
      if (newest !== null && (lastSuccessAt === null || lastIndex === null || compareBackupsNewerFirst(newest, { index: lastIndex, createdAt: lastSuccessAt }) < 0)) {
        this.state = { ...this.state, lastSuccessAt: newest.createdAt, lastIndex: newest.index };
      }
    } catch (err) {
      this.o.logger.debug({ err }, 'the backup directory could not be read');
    }
  }

  private async write(): Promise<void> {
    const { dir, retain } = this.o.config;
    try {
      const file = await takeBackup(this.o.source(), this.o.clock.nowMs(), this.o.clusterId ?? null);
      const name = await writeBackupFile(dir, file, retain);
      this.writtenMonoMs = this.o.clock.monoMs();
      this.state = { lastSuccessAt: file.createdAt, lastIndex: file.index, lastError: null };
      this.o.logger.info({ file: name, index: file.index, sizeBytes: file.bytes.length }, 'backup written');
      this.o.onSuccess?.(this.state);
    } catch (err) {
      // A file system's refusal in words, with the directory (Node's own text was `ENOSPC: no space left on device, write`).
      const code = (err as Partial<NodeJS.ErrnoException> | null)?.code;
      const message = typeof code === 'string' && /^E[A-Z]+$/.test(code) ? `writing a backup into ${dir} failed: ${errnoReason(err, backupDirReasons)}` : err instanceof Error ? err.message : String(err);
      this.state = { ...this.state, lastError: message };
      this.o.logger.warn({ err, dir }, 'backup failed');
    }
  }
}

/** The backup service of GET /v1/snapshot and, with a backup config, the scheduled backups' loop (started here). */
export function startBackups(o: {
  config: BackupConfig | null;
  driver: BackupSource & { status(): { role: string } };
  clock: Clock;
  logger: Logger;
  /** The cluster CA's organisation, named in every file's header; null for an insecure cluster. */
  clusterId: string | null;
  onSuccess?: (status: BackupStatus) => void;
}): { service: BackupService; close(): void } {
  const loop =
    o.config === null
      ? null
      : new BackupLoop({
          config: o.config,
          source: () => o.driver,
          isLeader: () => o.driver.status().role === 'leader',
          clock: o.clock,
          logger: o.logger,
          clusterId: o.clusterId,
          ...(o.onSuccess === undefined ? {} : { onSuccess: o.onSuccess }),
        });
  loop?.start();
  const service = new BackupServiceImpl({ source: () => o.driver, clock: o.clock, clusterId: o.clusterId, status: () => loop?.status ?? null });
  return { service, close: () => loop?.close() };
}
