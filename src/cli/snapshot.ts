// `minkube snapshot save|inspect|restore`: a backup of the cluster's applied state (GET /v1/snapshot, admin tokens
// only), its verification and counts, and a new one-voter cluster's data directory made from it.
import { createHash } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { RestoreResult } from '../daemon/restore.js';
import { MinkubeError } from '../lib/errors.js';
import { apiClientFor } from './connection.js';
import { cannotWrite, formatTable, printJson, printLine, writeFileOrFail, type Output } from './output.js';

/** A large state takes a while to encode; the barrier before it is bounded by the server's own timeout. */
const SAVE_TIMEOUT_MS = 300_000;
const BACKUP_FILE_MODE = 0o600;

const loadRestore = (): Promise<typeof import('../daemon/restore.js')> => import('../daemon/restore.js');


/**
 * Said on stderr of a file whose header no checksum covers (format 1, an earlier build's): it is still read, so that
 * backups already kept stay restorable, but what its header says is taken as written.
 */
function noteUnverifiedHeader(file: string): void {
  process.stderr.write(
    `note: ${file} is a format-1 file (an earlier Minkube's): its checksum covers the body only, so its index, term, members and creation time are not verified; a file saved now covers them\n`,
  );
}

export async function runSnapshotSave(apiUrl: string, file: string, out: Output): Promise<void> {
  // Tried before the snapshot is fetched: a path that cannot be written fails at once, not after the whole download.
  const temp = `${file}.partial`;
  if ((await stat(file).catch(() => null))?.isDirectory() === true) throw cannotWrite(file, { code: 'EISDIR' });
  // The file holds secrets (token hashes, the session key, secretEnv values): made the owner's alone, as the data
  // directories are. A stale temp file is removed first (writeFile keeps an existing file's mode).
  await rm(temp, { force: true }).catch(() => undefined);
  await writeFileOrFail(temp, '', BACKUP_FILE_MODE);
  try {
    await saveSnapshotTo(apiUrl, file, temp, out);
  } finally {
    await rm(temp, { force: true });
  }
}

async function saveSnapshotTo(apiUrl: string, file: string, temp: string, out: Output): Promise<void> {
  const res = await apiClientFor(apiUrl, { timeoutMs: SAVE_TIMEOUT_MS }).requestBytes('GET', '/v1/snapshot');
  const { inspectBackup } = await loadRestore();
  // Verified before it is written, as `snapshot inspect` verifies a file: whole (the framing's checksums, of its header
  // and of its body), what the server sent (X-Minkube-Checksum covers the whole file, as `sha256sum` of it does), and a
  // state that loads at the header's index, so that a file saved is one `snapshot restore` takes.
  const header = inspectBackup(res.bytes);
  const checksum = `sha256:${createHash('sha256').update(res.bytes).digest('hex')}`;
  const said = res.headers['x-minkube-checksum'];
  if (typeof said === 'string' && said !== checksum) {
    throw new MinkubeError('SNAPSHOT_INVALID', `the answer says ${said} but its file is ${checksum}; not saved`);
  }
  await writeFileOrFail(temp, res.bytes, BACKUP_FILE_MODE);
  await rename(temp, file).catch((err: unknown) => {
    throw cannotWrite(file, err);
  });
  if (!header.headerVerified) noteUnverifiedHeader(file);
  const summary = { file, index: header.index, term: header.term, sizeBytes: res.bytes.length, checksum };
  if (out.json) printJson(summary);
  else printLine(`saved the snapshot at index ${header.index} (term ${header.term}) to ${file}: ${res.bytes.length} bytes, ${checksum}`);
}

export async function runSnapshotInspect(file: string, out: Output): Promise<void> {
  const { inspectBackup } = await loadRestore();
  const s = inspectBackup(readFileOrFail(file));
  if (!s.headerVerified) noteUnverifiedHeader(file);
  if (out.json) {
    printJson(s);
    return;
  }
  const rows = [
    ['INDEX', 'TERM', 'SIZE', 'CHECKSUM', 'KEYS', 'TASKS', 'WORKERS', 'MEMBERS', 'CREATED', 'CLUSTER'],
    [String(s.index), String(s.term), String(s.sizeBytes), s.checksum, String(s.keys), String(s.tasks), String(s.workers), String(s.members), s.createdAt, s.clusterId ?? '-'],
  ];
  printLine(formatTable(rows));
}

function readFileOrFail(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new MinkubeError('SNAPSHOT_INVALID', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export interface RestoreFlags {
  id: string;
  dataDir: string;
  raftAddress?: string;
  apiAddress?: string;
  config?: string;
  force?: boolean;
  fromOtherCluster?: boolean;
}

export async function runSnapshotRestore(file: string, f: RestoreFlags, out: Output): Promise<void> {
  // Both override a guard that only --config sets up: alone they would promise a check that never ran.
  for (const [given, flag] of [[f.force, '--force'], [f.fromOtherCluster, '--from-other-cluster']] as const) {
    if (given === true && f.config === undefined) throw new MinkubeError('CONFIG_INVALID', `${flag} goes with --config (without it no other manager is asked and no cluster is compared: there is nothing to override)`);
  }
  const { restoreBackup } = await loadRestore();
  const r = await restoreBackup({
    file, id: f.id, dataDir: f.dataDir,
    ...(f.raftAddress === undefined ? {} : { raftAddress: f.raftAddress }),
    ...(f.apiAddress === undefined ? {} : { apiAddress: f.apiAddress }),
    ...(f.config === undefined ? {} : { configPath: f.config }),
    force: f.force === true,
    fromOtherCluster: f.fromOtherCluster === true,
  });
  if (!r.headerVerified) noteUnverifiedHeader(file);
  warnOfRestored(file, r);
  if (out.json) {
    printJson(r);
    return;
  }
  printLine(`restored the snapshot at index ${r.index} into ${r.dataDir}: ${r.keys} keys, ${r.tasks} tasks, ${r.workers} workers`);
  printLine(`${r.id} is the only member of a new cluster (term ${r.term}), at raft ${r.raftAddress} and api ${r.apiAddress}. Start it:`);
  if (f.config === undefined) {
    // From flags alone it would have no certificate: a config that lists it is where its CA (or insecure: true) comes from.
    printLine(`  minkube manager --id ${r.id} --config FILE   (a config that lists ${r.id} at these addresses with dataDir ${r.dataDir})`);
  } else printLine(`  minkube manager --id ${r.id} --config ${f.config}`);
  printLine('then start every other manager with an empty data directory and --join <its API URL>.');
}

/** On stderr: what a restore let through that the operator must know of (the guards' overrides, an unchecked file). */
function warnOfRestored(file: string, r: RestoreResult): void {
  if (r.answering.length > 0) {
    const named = r.answering.map((a) => `${a.id} (${a.url})`).join(', ');
    process.stderr.write(
      `warning: restored with --force while ${named} answered: ${r.id} starts as a cluster of its own; stop those managers for good before starting it, or the two clusters take writes apart\n`,
    );
  }
  if (r.targetClusterId === null) return;
  if (r.fileClusterId === null) {
    process.stderr.write(
      `note: ${file} names no cluster (an insecure cluster's file, or an earlier Minkube's): whether it is a backup of cluster ${r.targetClusterId} cannot be checked; its tokens are the ones the restored cluster accepts\n`,
    );
  } else if (r.fileClusterId !== r.targetClusterId) {
    process.stderr.write(
      `warning: ${file} is a backup of cluster ${r.fileClusterId}, restored into cluster ${r.targetClusterId}: the restored cluster's tokens are the file's, so ${r.targetClusterId}'s admin token (admin.token beside its CA) and its credentials file's token will be refused. ` +
        `Use an admin token of ${r.fileClusterId} (its admin.token, or one made there with minkube token create --role admin) with MINKUBE_TOKEN=<token> and this cluster's credentials file (its CA), then make this cluster's own tokens\n`,
    );
  }
}

/** Registers `snapshot` on the program (main.ts calls this, as it does for the other groups). */
export function addSnapshotCommands(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  const snapshot = program.command('snapshot').description('backups: save the cluster state to a file, check a file, restore a new cluster from one');
  snapshot
    .command('save <file>')
    .description("write a consistent snapshot of the cluster's state (admin token) to FILE, verified before it is written")
    .action(async (file: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runSnapshotSave(g.api, file, g.out);
    });
  snapshot
    .command('inspect <file>')
    .description("verify a snapshot file's checksums (header and body) and print its index, term, size, counts of keys, tasks, workers and members, and the cluster that wrote it")
    .action(async (file: string, _flags: object, cmd: Command) => {
      await runSnapshotInspect(file, globals(cmd).out);
    });
  snapshot
    .command('restore <file>')
    .description('make the data directory of a new one-voter cluster holding the snapshot; the other managers then --join')
    .requiredOption('--id <id>', "the new cluster's first manager")
    .requiredOption('--data-dir <dir>', 'its data directory (must be empty or missing)')
    .option('--raft-address <host:port>', 'its Raft address (default: from --config)')
    .option('--api-address <host:port>', 'its API address (default: from --config)')
    .option('--config <file>', "a cluster config that lists the manager: restore refuses while another of its managers answers, or a backup of another cluster than its CA's")
    .option('--force', "with --config: restore although other managers of the config answer (they belong to a cluster being retired)")
    .option('--from-other-cluster', "with --config: restore a backup of another cluster than the config's CA is for (the file's tokens replace this cluster's)")
    .action(async (file: string, flags: RestoreFlags, cmd: Command) => {
      await runSnapshotRestore(file, flags, globals(cmd).out);
    });
}
