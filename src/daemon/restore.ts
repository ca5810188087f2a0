// What `minkube snapshot` needs below the CLI (which may import only daemon/): verifying and counting a backup file,
// and restoring one into a new one-voter cluster's data directory (src/manager/backup-restore.ts).
export { inspectBackup, parseBackup, type BackupSummary } from '../manager/backup-file.js';
export { restoreBackup, type RestoreOptions, type RestoreResult } from '../manager/backup-restore.js';
