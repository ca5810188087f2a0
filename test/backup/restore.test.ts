// `snapshot restore` in process: a data directory emptied with `rm -rf`, whose marker (beside it) still says a later
// term than the backup's, is restored into a one-voter cluster whose manager leads, with a marker that its log covers.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { encodeBackup } from '../../src/manager/backup-file.js';
import { restoreBackup } from '../../src/manager/backup-restore.js';
import { encodeSnapshot } from '../../src/manager/members.js';
import { FileMarker, markerPathFor } from '../../src/storage/marker.js';
import { httpJson } from '../support/cluster.js';
import { eventually, freePort } from '../support/wait.js';

const dirs: string[] = [];
const running: RunningManager[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A backup at index 11, term 3, of 10 keys, taken from a cluster of m1 and m2. */
async function backupFile(dir: string): Promise<string> {
  const sm = new KvStateMachine();
  for (let i = 1; i <= 11; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `k${i}`, value: `v${i}` } }));
  const meta = { index: logIndex(11), term: term(3), voters: [nodeId('m1'), nodeId('m2')], learners: [] };
  const body = encodeSnapshot([[nodeId('m1'), { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]], await sm.captureSnapshot()());
  const file = join(dir, 'backup.mksnap');
  writeFileSync(file, encodeBackup(meta, body, '2030-01-01T00:00:00.000Z'));
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
