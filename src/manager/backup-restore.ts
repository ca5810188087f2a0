// `minkube snapshot restore`: turns a backup file into the data directory of a new one-voter cluster holding its
// state, as --force-new-cluster turns a survivor's: the snapshot is stored with this manager as its only member, and
// forceNewCluster appends the config entry of a new term that no other node ever used. The others then --join.
// With --config it first refuses (restore-guards.ts) while another manager of the config answers, and a backup of
// another cluster than the config's CA is for, unless the operator says otherwise (force, fromOtherCluster).
import { readdir, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadClusterConfig, parseClusterConfig, type ClusterConfig } from '../config/cluster.js';
import { unusableDataDir } from '../lib/data-dir.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, nodeId, type NodeId } from '../lib/ids.js';
import { makeDirs } from '../lib/make-dirs.js';
import { forceNewCluster } from '../raft/index.js';
import type { RaftInitialState, SnapshotMeta } from '../raft/types.js';
import { CheckedStorage } from '../storage/checked.js';
import { storageFailed } from '../storage/common.js';
import { LevelRaftStorage } from '../storage/level.js';
import { FileMarker, markerPathFor } from '../storage/marker.js';
import { syncDir } from '../storage/snapshot-files.js';
import { loadBackup, parseBackup } from './backup-file.js';
import { encodeSnapshot } from './members.js';
import { answeringManagers, managersRunning, otherCluster, targetClusterId, type AnsweringManager } from './restore-guards.js';

export interface RestoreOptions {
  file: string;
  id: string;
  dataDir: string;
  raftAddress?: string;
  apiAddress?: string;
  /** A cluster config that lists `id`: its addresses unless the flags give them. */
  configPath?: string;
  /** Restore although other managers of the config answer (a cluster being retired): they are listed in the result. */
  force?: boolean;
  /** Restore a backup whose header names another cluster than the config's CA is for. */
  fromOtherCluster?: boolean;
  /** How long the other managers of the config are given to answer, in all (default limits.restoreProbeMsMax). */
  probeTimeoutMs?: number;
}

export interface RestoreResult {
  readonly id: string;
  readonly dataDir: string;
  readonly raftAddress: string;
  readonly apiAddress: string;
  readonly index: number;
  /** The file's header matched its digest; false for a format-1 file (an earlier build's), whose header is unverified. */
  readonly headerVerified: boolean;
  /** The new cluster's first term (the backup's term plus one). */
  readonly term: number;
  readonly keys: number;
  readonly tasks: number;
  readonly workers: number;
  /** The cluster the file's header names; null: it names none (an insecure cluster's file, or an earlier build's). */
  readonly fileClusterId: string | null;
  /** The cluster the config's CA is for; null: not known (no --config, an insecure cluster, no CA made yet). */
  readonly targetClusterId: string | null;
  /** Managers of the config that answered and were passed over (force); empty otherwise. */
  readonly answering: readonly AnsweringManager[];
}

export async function restoreBackup(o: RestoreOptions): Promise<RestoreResult> {
  // The file first (README: "The file is verified first"): a bad one is SNAPSHOT_INVALID whatever else is wrong.
  let bytes: Buffer;
  try {
    bytes = await readFile(o.file);
  } catch (err) {
    throw new MinkubeError('SNAPSHOT_INVALID', `cannot read ${o.file}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = parseBackup(bytes);
  const { state, kv, removed } = loadBackup(parsed);
  const config = o.configPath === undefined ? null : await loadClusterConfig(o.configPath);
  const self = addressesOf(o, config);
  const dataDir = resolve(o.dataDir);
  await refuseNonEmpty(dataDir);
  const fileClusterId = parsed.header.clusterId ?? null;
  const checked = config === null ? { targetClusterId: null, answering: [] } : await checkTarget(o, config, fileClusterId);
  const id = nodeId(o.id);
  // This manager alone: the old members' addresses and ids mean nothing to the new cluster. The managers removed stay
  // removed: a cluster restored under its old CA would otherwise take their old certificates again.
  const meta: SnapshotMeta = { index: logIndex(parsed.header.index), term: parsed.meta.term, voters: [id], learners: [] };
  const body = encodeSnapshot([[id, { raftAddress: self.raftAddress, apiAddress: self.apiAddress }]], state, removed.filter(([r]) => r !== id));
  const forced = forceNewCluster({ hardState: { term: meta.term, vote: null, commit: meta.index }, entries: [], applied: meta.index, snapshot: meta }, id as NodeId);
  await storeRestored(dataDir, forced, { meta, data: body });
  return {
    id: o.id, dataDir, ...self, index: meta.index, headerVerified: parsed.headerVerified, term: forced.hardState.term,
    keys: kv.size, tasks: kv.tasks.taskCount, workers: kv.tasks.allWorkers().length, fileClusterId, ...checked,
  };
}

/**
 * The restore-time guards of a --config restore, before anything is written: the file must be the config's cluster's
 * (when both name one), and no other manager of the config may answer. RESTORE_REFUSED unless told otherwise.
 */
async function checkTarget(o: RestoreOptions, config: ClusterConfig, fileClusterId: string | null): Promise<{ targetClusterId: string | null; answering: AnsweringManager[] }> {
  const configPath = o.configPath ?? '';
  const target = await targetClusterId(config).catch((err: unknown) => {
    throw new MinkubeError('CONFIG_INVALID', `cannot read the cluster CA in ${config.clusterDir}: ${(err as Error).message}`, { cause: err });
  });
  if (target !== null && fileClusterId !== null && fileClusterId !== target && o.fromOtherCluster !== true) {
    throw otherCluster(o.file, fileClusterId, target, configPath);
  }
  const answering = await answeringManagers(config, o.id, o.probeTimeoutMs);
  if (answering.length > 0 && o.force !== true) throw managersRunning(answering, o.id, configPath);
  return { targetClusterId: target, answering };
}

/**
 * Writes the new cluster's snapshot and first entry, and the marker beside DIR for them. An old marker there is
 * forgotten first: `rm -rf DIR` keeps it, and it says what another log acknowledged, often in a later term than this
 * one (the file is older than the cluster it was taken from), so the restored manager would start recovering and, the
 * only voter, never elect itself. The directory and its marker are made aside (`DIR.restoring`, 0700) and renamed
 * into place once whole, the directory first: a restore cut short (killed, a full disk) leaves DIR as it was, missing
 * or empty, never a database without its snapshot (which started as a new, empty cluster), and a crash between the
 * two renames leaves a whole DIR without a marker, which is trusted (a marker is made for it).
 */
async function storeRestored(dataDir: string, forced: RaftInitialState, snapshot: { meta: SnapshotMeta; data: Uint8Array }): Promise<void> {
  const final = new FileMarker(markerPathFor(dataDir));
  await final.reset().catch((err: unknown) => {
    throw storageFailed(`cannot remove the old marker ${final.where}`, err, 'run the restore again');
  });
  const aside = `${dataDir}.restoring`;
  const asideMarker = markerPathFor(aside);
  try {
    await rm(aside, { recursive: true, force: true });
    await rm(asideMarker, { force: true });
    // A path where no directory can be made is the flag's problem, as for `minkube manager --data-dir`.
    await makeDirs(aside, 0o700).catch((err: unknown) => {
      throw unusableDataDir(dataDir, '--data-dir', err);
    });
    const storage = new CheckedStorage(await LevelRaftStorage.open(aside), new FileMarker(asideMarker));
    try {
      await storage.loadChecked();
      await storage.save(forced.hardState, forced.entries, { sync: true, snapshot });
    } finally {
      await storage.close();
    }
    await rmdir(dataDir).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
    await rename(aside, dataDir);
    await syncDir(dirname(dataDir));
    await rename(asideMarker, final.where);
    await syncDir(dirname(final.where));
  } catch (err) {
    if (err instanceof MinkubeError) throw err;
    throw storageFailed(`cannot write the restored data directory ${dataDir}`, err, 'run the restore again');
  }
}

function addressesOf(o: RestoreOptions, config: ClusterConfig | null): { raftAddress: string; apiAddress: string } {
  let raftAddress = o.raftAddress;
  let apiAddress = o.apiAddress;
  if (config !== null) {
    const listed = config.managers.find((m) => m.id === o.id);
    raftAddress ??= listed?.raftAddress;
    apiAddress ??= listed?.apiAddress;
    // `minkube manager --config` would start from the config's directory and never read the restored one.
    if (listed !== undefined && resolve(o.dataDir) !== listed.dataDir) {
      throw new MinkubeError('CONFIG_INVALID', `--data-dir ${resolve(o.dataDir)} is not ${o.id}'s dataDir in ${o.configPath ?? ''} (${listed.dataDir}): restore into that one, or change the config`);
    }
  }
  if (raftAddress === undefined || apiAddress === undefined) {
    throw new MinkubeError('CONFIG_INVALID', `manager ${o.id}'s addresses are unknown: give --raft-address and --api-address, or a --config that lists ${o.id}`);
  }
  // The manager's entry as a config would list it, checked as one is (and as `minkube manager` checks its flags, and the
  // members API a new member): the id's pattern, each address, the two addresses apart. Refused, nothing is written.
  const source = 'the manager to restore (managers[0]: --id, --data-dir, and the addresses of the flags or the config)';
  parseClusterConfig({ managers: [{ id: o.id, raftAddress, apiAddress, dataDir: o.dataDir }] }, process.cwd(), source);
  return { raftAddress, apiAddress };
}

async function refuseNonEmpty(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new MinkubeError('CONFIG_INVALID', `cannot read the data directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  if (names.length > 0) {
    throw new MinkubeError('CONFIG_INVALID', `the data directory ${dir} is not empty (${names.length} entries); restore needs a new, empty one`);
  }
}

