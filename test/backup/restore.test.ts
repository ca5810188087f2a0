// `snapshot restore` in process: a data directory emptied with `rm -rf`, whose marker (beside it) still says a later
// term than the backup's, is restored into a one-voter cluster whose manager leads, with a marker that its log covers.
// With --config it refuses, writing nothing, while another manager of the config answers (unless forced), and a
// backup of another cluster than the config's CA is for (unless told it is meant).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadClusterConfig, parseClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { encodeBackup } from '../../src/manager/backup-file.js';
import { restoreBackup } from '../../src/manager/backup-restore.js';
import { encodeSnapshot } from '../../src/manager/members.js';
import { ensureLocalPki } from '../../src/security/pki-files.js';
import { FileMarker, markerPathFor } from '../../src/storage/marker.js';
import { httpJson } from '../support/cluster.js';
import { eventually, freePort } from '../support/wait.js';

const dirs: string[] = [];
const running: RunningManager[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A backup at index 11, term 3, of 10 keys, taken from a cluster of m1 and m2 (named `clusterId`, if given). */
async function backupFile(dir: string, clusterId: string | null = null, name = 'backup.mksnap'): Promise<string> {
  const sm = new KvStateMachine();
  for (let i = 1; i <= 11; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `k${i}`, value: `v${i}` } }));
  const meta = { index: logIndex(11), term: term(3), voters: [nodeId('m1'), nodeId('m2')], learners: [] };
  const body = encodeSnapshot([[nodeId('m1'), { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]], await sm.captureSnapshot()());
  const file = join(dir, name);
  writeFileSync(file, encodeBackup(meta, body, '2030-01-01T00:00:00.000Z', clusterId));
  return file;
}

/** Starts m1 of `config` from its restored directory; answers its API's URL once it leads with intact storage. */
async function leadsRestored(config: ReturnType<typeof parseClusterConfig>): Promise<string> {
  const m1 = await startManagerFromConfig(config, 'm1', pino({ level: 'silent' }));
  running.push(m1);
  const url = `http://${config.managers[0]!.apiAddress}`;
  const cluster = await eventually(async () => {
    const r = await httpJson(url, 'GET', '/v1/cluster');
    return r.body?.leaderId === 'm1' ? (r.body as { storage: string }) : undefined;
  }, 20_000, 'm1 to lead the restored cluster');
  expect(cluster.storage).toBe('ok');
  return url;
}

describe('snapshot restore', () => {
  it('verifies the file first: a truncated one is SNAPSHOT_INVALID even with the addresses missing too', async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const file = await backupFile(root);
    writeFileSync(file, readFileSync(file).subarray(0, 200));
    await expect(restoreBackup({ file, id: 'm1', dataDir: join(root, 'm1') })).rejects.toMatchObject({ code: 'SNAPSHOT_INVALID', message: expect.stringMatching(/truncated/) as string });
    expect(existsSync(join(root, 'm1'))).toBe(false);
  });

  it('into a directory emptied with rm -rf: the stale marker beside it is replaced, and the manager leads', async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const file = await backupFile(root);
    const dataDir = join(root, 'm1');
    // What the old m1 acknowledged, in a later term than the backup's (the cluster went on after it was taken).
    const stale = new FileMarker(markerPathFor(dataDir));
    await stale.write({ ackedIndex: 984, ackedTerm: 7, term: 7, vote: nodeId('m2') });
    await stale.close();
    const config = parseClusterConfig(
      { insecure: true, managers: [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: 'm1' }], workers: [], raft: { heartbeatIntervalMs: 25, electionTimeoutMs: 200 } },
      root,
    );
    const self = config.managers[0]!;

    const restored = await restoreBackup({ file, id: 'm1', dataDir, raftAddress: self.raftAddress, apiAddress: self.apiAddress });
    expect(restored).toMatchObject({ index: 11, term: 4, keys: 11 });
    // The marker says the restored log's end (the new cluster's config entry), nothing of the old log.
    expect(await new FileMarker(markerPathFor(dataDir)).read()).toEqual({ kind: 'ok', marker: { ackedIndex: 12, ackedTerm: 4, term: 4, vote: null } });

    const url = await leadsRestored(config);
    expect((await httpJson(url, 'GET', '/v1/kv/k5')).body.value).toBe('v5');
    expect((await httpJson(url, 'PUT', '/v1/kv/after', { value: 'x' })).status).toBe(200);
  });

  it('killed between its two renames (the directory in place, its marker aside): the manager takes that marker and leads', async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const file = await backupFile(root);
    const dataDir = join(root, 'm1');
    const config = parseClusterConfig(
      { insecure: true, managers: [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: 'm1' }], workers: [], raft: { heartbeatIntervalMs: 25, electionTimeoutMs: 200 } },
      root,
    );
    const self = config.managers[0]!;
    await restoreBackup({ file, id: 'm1', dataDir, raftAddress: self.raftAddress, apiAddress: self.apiAddress });
    renameSync(markerPathFor(dataDir), markerPathFor(`${dataDir}.restoring`));
    await leadsRestored(config);
    expect(existsSync(markerPathFor(`${dataDir}.restoring`))).toBe(false);
  });

  it('is made aside and renamed into place whole: what a killed restore left aside is replaced, and the directory is 0700', async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const file = await backupFile(root);
    const dataDir = join(root, 'm1');
    // What a restore killed part-way leaves now: its directory aside (a database without a snapshot) and its marker.
    mkdirSync(`${dataDir}.restoring`);
    writeFileSync(join(`${dataDir}.restoring`, 'CURRENT'), 'MANIFEST-000002\n');
    writeFileSync(markerPathFor(`${dataDir}.restoring`), 'junk');
    mkdirSync(dataDir); // the empty directory the operator made: still empty, as a killed restore leaves it
    const restored = await restoreBackup({ file, id: 'm1', dataDir, raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' });
    expect(restored).toMatchObject({ index: 11, keys: 11 });
    expect(existsSync(`${dataDir}.restoring`)).toBe(false);
    expect(existsSync(markerPathFor(`${dataDir}.restoring`))).toBe(false);
    expect(readdirSync(dataDir)).toContain('CURRENT');
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(await new FileMarker(markerPathFor(dataDir)).read()).toMatchObject({ kind: 'ok', marker: { ackedIndex: 12 } });
  });
});

/** Nothing of a restore into `dataDir`: no directory, none aside, no marker. */
function expectNothingWritten(dataDir: string): void {
  for (const made of [dataDir, `${dataDir}.restoring`, markerPathFor(dataDir), markerPathFor(`${dataDir}.restoring`)]) expect(existsSync(made), made).toBe(false);
}

/** A config file in `root` listing m1, m2, m3 on this test's loopback addresses (insecure unless `secure`). */
async function writeConfig(root: string, secure: boolean): Promise<string> {
  const managers = [];
  for (const [i, id] of ['m1', 'm2', 'm3'].entries()) {
    const host = `127.0.53.${i + 1}`;
    managers.push({ id, raftAddress: `${host}:${await freePort(host)}`, apiAddress: `${host}:${await freePort(host)}`, dataDir: id });
  }
  const path = join(root, 'cluster.json');
  writeFileSync(path, JSON.stringify({ ...(secure ? {} : { insecure: true }), managers, workers: [], raft: { heartbeatIntervalMs: 25, electionTimeoutMs: 200 } }));
  return path;
}

describe('snapshot restore --config: the guards', () => {
  it('refuses while another manager of the config answers, naming it and writing nothing; a stopped one does not block; force proceeds', async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const file = await backupFile(root);
    const configPath = await writeConfig(root, false);
    const config = await loadClusterConfig(configPath);
    // m2 runs (alone it has no quorum, but it answers, as any manager of a running cluster does); m3 is stopped.
    running.push(await startManagerFromConfig(config, 'm2', pino({ level: 'silent' })));
    const m2 = `http://${config.managers[1]!.apiAddress}`;
    await eventually(async () => ((await httpJson(m2, 'GET', '/status')).status === 200 ? true : undefined), 20_000, 'm2 to answer');
    const dataDir = join(root, 'm1');

    const refused = restoreBackup({ file, id: 'm1', dataDir, configPath });
    await expect(refused).rejects.toMatchObject({ code: 'RESTORE_REFUSED', details: { running: ['m2'] } });
    const message = (await refused.catch((err: Error) => err)) as Error;
    expect(message.message).toContain(`manager m2 (${m2}) of ${configPath} answers: snapshot restore rebuilds a cluster from one manager and needs every manager stopped`);
    expect(message.message).toContain('minkube member remove m1');
    expect(message.message).toContain('--join URL');
    expect(message.message).toContain('--force');
    expect(message.message).not.toContain('m3 (');
    expectNothingWritten(dataDir);

    const forced = await restoreBackup({ file, id: 'm1', dataDir, configPath, force: true });
    expect(forced).toMatchObject({ index: 11, keys: 11, answering: [{ id: 'm2', url: m2 }] });
    expect(readdirSync(dataDir)).toContain('CURRENT');
  }, 60_000);

  it("refuses a backup of another cluster than the config's CA is for, writing nothing; accepts it when told; the same cluster's and a file naming none pass", async () => {
    const root = mkdtempSync(join(tmpdir(), 'minkube-restore-'));
    dirs.push(root);
    const configPath = await writeConfig(root, true);
    const { clusterId } = await ensureLocalPki({ clusterDir: join(root, '.minkube'), nodes: [] });
    const foreign = await backupFile(root, 'mk-elsewhere', 'foreign.mksnap');
    const dataDir = join(root, 'm1');

    const refused = restoreBackup({ file: foreign, id: 'm1', dataDir, configPath });
    await expect(refused).rejects.toMatchObject({
      code: 'RESTORE_REFUSED',
      message: `${foreign} is a backup of cluster mk-elsewhere, but ${configPath} is for cluster ${clusterId} (its CA): restored, the cluster would hold mk-elsewhere's tokens, and ${clusterId}'s admin token and credentials file would be refused. Nothing was written. To restore it all the same, give --from-other-cluster`,
    });
    expectNothingWritten(dataDir);

    expect(await restoreBackup({ file: foreign, id: 'm1', dataDir, configPath, fromOtherCluster: true })).toMatchObject({ fileClusterId: 'mk-elsewhere', targetClusterId: clusterId, answering: [] });
    rmSync(dataDir, { recursive: true });
    expect(await restoreBackup({ file: await backupFile(root, clusterId, 'own.mksnap'), id: 'm1', dataDir, configPath })).toMatchObject({ fileClusterId: clusterId, targetClusterId: clusterId });
    rmSync(dataDir, { recursive: true });
    expect(await restoreBackup({ file: await backupFile(root, null, 'unnamed.mksnap'), id: 'm1', dataDir, configPath })).toMatchObject({ fileClusterId: null, targetClusterId: clusterId });
  }, 60_000);
});
