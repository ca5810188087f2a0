// `minkube snapshot save|inspect|restore` against a manager app serving GET /v1/snapshot over a real state machine:
// the X-Minkube-Checksum header, the saved file's `sha256sum` and what save and inspect print are one checksum, a
// download whose header disagrees with the bytes is not saved, a file whose header was edited is refused by inspect and
// restore while an earlier build's file (format 1) is still read with a note, and restore refuses a --data-dir that
// is not the one its --config gives the manager. A file names the cluster that wrote it: restore into a secure cluster
// refuses another cluster's file unless --from-other-cluster (then a warning says whose tokens hold), and notes a file
// that names none.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { BackupService, SnapshotFile } from '../../src/contracts/services.js';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { parseBackup } from '../../src/manager/backup-file.js';
import { takeBackup, type BackupSource } from '../../src/manager/backup.js';
import { encodeSnapshot } from '../../src/manager/members.js';
import { ensureLocalPki } from '../../src/security/pki-files.js';
import { FakeManagerService } from '../api/fake-service.js';
import { asFormat1, replaceOnce } from '../support/backup-file.js';
import { runCli } from '../support/cli.js';

/** A source over a state machine holding `keys` keys, captured as the driver would. */
function sourceWith(keys: number): BackupSource {
  const sm = new KvStateMachine();
  for (let i = 1; i <= keys; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `k${i}`, value: `v${i}` } }));
  return {
    linearizableBarrier: () => Promise.resolve(),
    captureState: () => {
      const encode = sm.captureSnapshot();
      const meta = { index: logIndex(sm.appliedIndex), term: term(2), voters: [nodeId('m1')], learners: [] };
      return { meta, encode: async () => encodeSnapshot([[nodeId('m1'), { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]], await encode()) };
    },
  };
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const source = sourceWith(20);
const honest: BackupService = { snapshot: () => takeBackup(source, Date.now()), status: () => null };
/** Says the framing's inner checksum, as the header did before: not the bytes sent. */
const inner: BackupService = {
  snapshot: async (): Promise<SnapshotFile> => {
    const file = await takeBackup(source, Date.now());
    return { ...file, sha256: parseBackup(file.bytes).header.sha256 };
  },
  status: () => null,
};
const apps: FastifyInstance[] = [buildManagerApp({ service: new FakeManagerService(), backup: honest }), buildManagerApp({ service: new FakeManagerService(), backup: inner })];
let urls: string[];
let dir: string;

beforeAll(async () => {
  urls = await Promise.all(apps.map((a) => a.listen({ host: '127.0.0.1', port: 0 })));
  dir = mkdtempSync(join(tmpdir(), 'minkube-cli-snapshot-'));
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('snapshot checksums', () => {
  it('X-Minkube-Checksum is the sha256 of the body, as sha256sum of the saved file', async () => {
    const res = await fetch(`${urls[0]!}/v1/snapshot`);
    const body = new Uint8Array(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(res.headers.get('x-minkube-checksum')).toBe(sha256(body));
    // The framing's own checksums still verify (of its header and of its inner body).
    expect(parseBackup(body).header.index).toBe(20);
  });

  it('save and inspect print the checksum of the file itself', async () => {
    const file = join(dir, 'ok.mksnap');
    const saved = await runCli(['--api', urls[0]!, '--json', 'snapshot', 'save', file]);
    expect(saved.stderr).toBe('');
    const summary = JSON.parse(saved.stdout) as { checksum: string; index: number };
    expect(summary).toMatchObject({ index: 20, checksum: sha256(readFileSync(file)) });
    const inspected = await runCli(['--json', 'snapshot', 'inspect', file]);
    expect(inspected.stderr).toBe('');
    expect(JSON.parse(inspected.stdout)).toMatchObject({ format: 2, headerVerified: true, index: 20, keys: 20, checksum: summary.checksum });
  });

  it('a header that is not the sha256 of the bytes received: SNAPSHOT_INVALID, nothing saved', async () => {
    const file = join(dir, 'mismatch.mksnap');
    const r = await runCli(['--api', urls[1]!, 'snapshot', 'save', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: SNAPSHOT_INVALID: the answer says sha256:[0-9a-f]{64} but its file is sha256:[0-9a-f]{64}; not saved/);
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`${file}.partial`)).toBe(false);
  });
});

describe('a file whose header was edited', () => {
  const restoreArgs = (file: string, dataDir: string) => ['snapshot', 'restore', file, '--id', 'm1', '--data-dir', dataDir, '--raft-address', '127.0.0.1:42001', '--api-address', '127.0.0.1:42002'];

  it('is refused by inspect and by restore, naming the header, whichever field changed', async () => {
    const whole = new Uint8Array(await (await fetch(`${urls[0]!}/v1/snapshot`)).arrayBuffer());
    const edits: [string, string, string][] = [
      ['index', '"index":20,', '"index":99,'],
      ['term', '"term":2,', '"term":7,'],
      ['voters', '"voters":["m1"]', '"voters":["m2"]'],
      ['createdAt', '"createdAt":"2', '"createdAt":"1'],
    ];
    for (const [field, from, to] of edits) {
      const file = join(dir, `edited-${field}.mksnap`);
      writeFileSync(file, replaceOnce(whole, from, to));
      const dataDir = join(dir, `restored-${field}`);
      const [inspected, restored] = await Promise.all([runCli(['snapshot', 'inspect', file]), runCli(restoreArgs(file, dataDir))]);
      for (const r of [inspected, restored]) {
        expect(r, field).toMatchObject({ code: 1, stdout: '' });
        expect(r.stderr, field).toMatch(/^error: SNAPSHOT_INVALID: header checksum mismatch: the file says sha256:[0-9a-f]{64}, its header is sha256:[0-9a-f]{64}; the header \(index, term, members, createdAt or the body's checksum\) was altered or damaged\n$/);
      }
      expect(existsSync(dataDir), field).toBe(false);
    }
  });

  it("an earlier build's file (format 1, no header checksum) is still inspected and restored, with a note that its header is unverified", async () => {
    const file = join(dir, 'format1.mksnap');
    writeFileSync(file, asFormat1(new Uint8Array(await (await fetch(`${urls[0]!}/v1/snapshot`)).arrayBuffer())));
    const note = `note: ${file} is a format-1 file (an earlier Minkube's): its checksum covers the body only, so its index, term, members and creation time are not verified; a file saved now covers them\n`;
    const inspected = await runCli(['--json', 'snapshot', 'inspect', file]);
    expect(inspected).toMatchObject({ code: 0, stderr: note });
    expect(JSON.parse(inspected.stdout)).toMatchObject({ format: 1, headerVerified: false, index: 20, keys: 20, checksum: sha256(readFileSync(file)) });
    const restored = await runCli(restoreArgs(file, join(dir, 'restored-format1')));
    expect(restored).toMatchObject({ code: 0, stderr: note });
    expect(restored.stdout).toContain(`restored the snapshot at index 20 into ${join(dir, 'restored-format1')}: 20 keys`);
  });
});

describe('snapshot restore with --config', () => {
  it("refuses a --data-dir other than the config's dataDir for the id, naming both, before writing anything", async () => {
    const file = join(dir, 'for-restore.mksnap');
    writeFileSync(file, new Uint8Array(await (await fetch(`${urls[0]!}/v1/snapshot`)).arrayBuffer()));
    const config = join(dir, 'sec2.json');
    writeFileSync(config, JSON.stringify({ insecure: true, managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: './sec2/m1' }] }));
    const other = join(dir, 'otherdir');
    const refused = await runCli(['snapshot', 'restore', file, '--id', 'm1', '--data-dir', other, '--config', config]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toBe(`error: CONFIG_INVALID: --data-dir ${other} is not m1's dataDir in ${config} (${join(dir, 'sec2', 'm1')}): restore into that one, or change the config\n`);
    expect(existsSync(other)).toBe(false);
    expect(existsSync(join(dir, 'sec2'))).toBe(false);

    // The same directory spelled another way is the config's.
    const restored = await runCli(['snapshot', 'restore', file, '--id', 'm1', '--data-dir', join(dir, 'sec2', '.', 'm1/'), '--config', config]);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored the snapshot at index 20 into ${join(dir, 'sec2', 'm1')}: 20 keys`);
    expect(restored.stdout).toContain(`minkube manager --id m1 --config ${config}`);
  });
});

describe('snapshot restore of a manager that could never start', () => {
  const source = 'the manager to restore (managers[0]: --id, --data-dir, and the addresses of the flags or the config)';

  it('refuses, as a config and the members API do, a bad id and addresses that are one endpoint, writing nothing', async () => {
    const file = join(dir, 'for-refusals.mksnap');
    writeFileSync(file, new Uint8Array(await (await fetch(`${urls[0]!}/v1/snapshot`)).arrayBuffer()));
    const cases: [string, string, string, string, string[]][] = [
      ['bad-id', 'bad id', '127.0.0.1:42001', '127.0.0.1:42002', ["managers[0].id: not a valid id (a letter or digit, then letters, digits, '.', '_' or '-')"]],
      ['same', 'm1', '127.0.0.1:42001', '127.0.0.1:42001', ['managers[0].apiAddress: duplicate address "127.0.0.1:42001" (also managers[0].raftAddress)']],
      // Two spellings of one endpoint are one address, as for the members API.
      ['spelled', 'm1', '127.0.0.1:42001', 'localhost:42001', ['managers[0].apiAddress: duplicate address "localhost:42001" (also managers[0].raftAddress)']],
      ['both', 'bad id', 'nohostport', 'nohostport', ["managers[0].id: not a valid id (a letter or digit, then letters, digits, '.', '_' or '-')", 'managers[0].raftAddress: expected host:port, got "nohostport"', 'managers[0].apiAddress: expected host:port, got "nohostport"']],
    ];
    for (const [name, id, raftAddress, apiAddress, problems] of cases) {
      const dataDir = join(dir, `refused-${name}`);
      const r = await runCli(['snapshot', 'restore', file, '--id', id, '--data-dir', dataDir, '--raft-address', raftAddress, '--api-address', apiAddress]);
      expect(r, name).toMatchObject({ code: 1, stdout: '' });
      const noun = problems.length === 1 ? 'problem' : 'problems';
      expect(r.stderr, name).toBe(`error: CONFIG_INVALID: ${source} is invalid (${problems.length} ${noun}):\n${problems.map((p) => `  - ${p}\n`).join('')}`);
      for (const made of [dataDir, `${dataDir}.restoring`, `${dataDir}.marker`]) expect(existsSync(made), `${name}: ${made}`).toBe(false);
    }
  });
});

describe('snapshot restore into a directory that cannot be made', () => {
  // fs.mkdir({ recursive: true }) spun forever on DIR.restoring there; the test's bound says "at once".
  it.runIf(existsSync('/proc/self'))('in /proc (mkdir answers ENOENT): exits 1 at once with CONFIG_INVALID naming --data-dir and why', async () => {
    const file = join(dir, 'for-proc.mksnap');
    writeFileSync(file, new Uint8Array(await (await fetch(`${urls[0]!}/v1/snapshot`)).arrayBuffer()));
    const r = await runCli(['snapshot', 'restore', file, '--id', 'm9', '--data-dir', '/proc/rs3', '--raft-address', '127.0.0.1:42001', '--api-address', '127.0.0.1:42002']);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(
      'error: CONFIG_INVALID: --data-dir /proc/rs3 cannot be used as a directory: no directory can be made in /proc: its file system answers ENOENT to mkdir /proc/rs3.restoring although /proc exists\n',
    );
  }, 20_000);
});

describe('snapshot restore overrides without --config', () => {
  // They override guards only --config sets up; an outside tester's --force alone restored with exit 0.
  it('--force or --from-other-cluster alone is CONFIG_INVALID, and nothing is written', async () => {
    const file = join(dir, 'no-config.mksnap');
    writeFileSync(file, (await takeBackup(source, Date.now(), 'mk-alone')).bytes);
    for (const flag of ['--force', '--from-other-cluster']) {
      const dataDir = join(dir, `alone${flag}`);
      const r = await runCli(['snapshot', 'restore', file, '--id', 'm9', '--data-dir', dataDir, '--raft-address', '127.0.0.1:42001', '--api-address', '127.0.0.1:42002', flag]);
      expect(r).toMatchObject({ code: 1, stdout: '' });
      expect(r.stderr).toMatch(new RegExp(`^error: CONFIG_INVALID: ${flag} goes with --config`));
      expect(existsSync(dataDir)).toBe(false);
    }
  }, 20_000);
});

describe('the cluster a file names', () => {
  it('inspect shows it, and its header digest covers it', async () => {
    const file = join(dir, 'named.mksnap');
    writeFileSync(file, (await takeBackup(source, Date.now(), 'mk-named')).bytes);
    const inspected = await runCli(['--json', 'snapshot', 'inspect', file]);
    expect(inspected).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(inspected.stdout)).toMatchObject({ format: 2, headerVerified: true, clusterId: 'mk-named' });
    const table = await runCli(['snapshot', 'inspect', file]);
    expect(table.stdout).toMatch(/CREATED\s+CLUSTER\n.*\smk-named\n/);
    // An insecure cluster's file (and an earlier build's) names none.
    const unnamed = join(dir, 'unnamed-inspect.mksnap');
    writeFileSync(unnamed, (await takeBackup(source, Date.now())).bytes);
    expect(JSON.parse((await runCli(['--json', 'snapshot', 'inspect', unnamed])).stdout)).toMatchObject({ clusterId: null });
    const edited = join(dir, 'renamed.mksnap');
    writeFileSync(edited, replaceOnce(readFileSync(file), '"clusterId":"mk-named"', '"clusterId":"mk-other"'));
    const refused = await runCli(['snapshot', 'inspect', edited]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: SNAPSHOT_INVALID: header checksum mismatch/);
  });

  it("restore --config of a secure cluster: another cluster's file is refused (exit 1, nothing written), taken with --from-other-cluster and a warning; one naming none with a note", async () => {
    const root = join(dir, 'secure-target');
    const { clusterId } = await ensureLocalPki({ clusterDir: join(root, '.minkube'), nodes: [] });
    const config = join(root, 'cluster.json');
    writeFileSync(config, JSON.stringify({ managers: [{ id: 'm1', raftAddress: '127.0.53.9:42001', apiAddress: '127.0.53.9:42002', dataDir: 'm1' }] }));
    const dataDir = join(root, 'm1');
    const foreign = join(dir, 'foreign.mksnap');
    writeFileSync(foreign, (await takeBackup(source, Date.now(), 'mk-elsewhere')).bytes);
    const args = (file: string, ...more: string[]) => ['snapshot', 'restore', file, '--id', 'm1', '--data-dir', dataDir, '--config', config, ...more];

    const refused = await runCli(args(foreign));
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toBe(
      `error: RESTORE_REFUSED: ${foreign} is a backup of cluster mk-elsewhere, but ${config} is for cluster ${clusterId} (its CA): restored, the cluster would hold mk-elsewhere's tokens, and ${clusterId}'s admin token and credentials file would be refused. Nothing was written. To restore it all the same, give --from-other-cluster\n`,
    );
    for (const made of [dataDir, `${dataDir}.restoring`, `${dataDir}.marker`]) expect(existsSync(made), made).toBe(false);

    const taken = await runCli(args(foreign, '--from-other-cluster'));
    expect(taken.code).toBe(0);
    expect(taken.stdout).toContain(`restored the snapshot at index 20 into ${dataDir}: 20 keys`);
    expect(taken.stderr).toMatch(new RegExp(`^warning: ${foreign} is a backup of cluster mk-elsewhere, restored into cluster ${clusterId}: the restored cluster's tokens are the file's, so ${clusterId}'s admin token .* will be refused\\. Use an admin token of mk-elsewhere .*MINKUBE_TOKEN`));

    rmSync(dataDir, { recursive: true });
    const unnamed = join(dir, 'unnamed.mksnap');
    writeFileSync(unnamed, (await takeBackup(source, Date.now())).bytes);
    const noted = await runCli(args(unnamed));
    expect(noted.code).toBe(0);
    expect(noted.stderr).toBe(`note: ${unnamed} names no cluster (an insecure cluster's file, or an earlier Minkube's): whether it is a backup of cluster ${clusterId} cannot be checked; its tokens are the ones the restored cluster accepts\n`);
  }, 30_000);
});
