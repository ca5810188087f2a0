// `minkube up` for real: three manager processes from a temporary config, the leader announced, SIGTERM stops all.
// Closed by default: up makes the CA and an admin token and writes the credentials file that later commands use.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { eventually, freePort, freePorts, waitFor } from '../support/wait.js';

const repoRoot = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'minkube-up-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refused(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });
}

/** What a test sees of a running `minkube up`: its output so far, and its exit code once it ends. */
interface RunningUp {
  readonly up: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

/**
 * Runs `minkube up --config configPath` with the credentials file at `credentials`, hands it to `body`, and then
 * kills its process group whatever happened (up and every node it started), so a failed test leaves nothing behind.
 */
async function withUp(configPath: string, credentials: string, body: (u: RunningUp) => Promise<void>): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, MINKUBE_CONFIG: credentials };
  delete env.MINKUBE_API;
  // A process group of its own, so that a failed test can kill up and every node it started at once.
  const up = spawn(process.execPath, [join(repoRoot, 'bin', 'minkube.js'), 'up', '--config', configPath], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  up.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  up.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  try {
    await body({ up, stdout: () => stdout, stderr: () => stderr, exited });
  } finally {
    try {
      process.kill(-up.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

it('starts every manager, prints prefixed readable logs and the leader, and stops them all on SIGTERM', async () => {
  const managers: { id: string; raftAddress: string; apiAddress: string; dataDir: string }[] = [];
  for (const id of ['m1', 'm2', 'm3']) {
    managers.push({ id, raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: `./data/${id}` });
  }
  const configPath = join(dir, 'cluster.json');
  writeFileSync(configPath, JSON.stringify({ managers, raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 400 } }));

  const credentials = join(dir, 'home', 'config.json');
  let stdout = '';
  await withUp(configPath, credentials, async (u) => {
    const leaderLine = /^leader: m\d \(term \d+\) at https:\/\/127\.0\.0\.1:\d+$/m;
    // On a timeout the expect below says what up printed instead.
    await waitFor('up to name the leader', () => leaderLine.test(u.stdout()), 120_000, 100).catch(() => undefined);
    stdout = u.stdout();
    expect(stdout, u.stderr()).toMatch(leaderLine);
    expect(stdout).toContain(`minkube up: 3 managers from ${configPath}`);
    expect(stdout).toContain(`m2  api https://${managers[1]!.apiAddress}  raft ${managers[1]!.raftAddress}  data ${join(dir, 'data', 'm2')}`);
    expect(stdout).toContain(`the CA, the admin token and the API addresses are in ${credentials}`);
    expect(stdout).toMatch(/^m1 \| \d\d:\d\d:\d\d\.\d{3} INFO {2}/m);
    // From any folder, with no flags: the credentials file names the cluster, its CA and a token.
    const written = JSON.parse(readFileSync(credentials, 'utf8')) as { apis: string[]; token: string; ca: string };
    expect(written.apis).toEqual(managers.map((m) => `https://${m.apiAddress}`));
    expect(written.token).toMatch(/^mk_[0-9a-f]{16}_/);
    expect(statSync(credentials).mode & 0o077).toBe(0);
    const put = await runCli(['kv', 'put', 'greeting', 'hello'], { MINKUBE_CONFIG: credentials }, tmpdir());
    expect(put.code, put.stderr).toBe(0);
    const get = await runCli(['kv', 'get', 'greeting'], { MINKUBE_CONFIG: credentials }, tmpdir());
    expect(get.stdout).toBe('hello');
    // Without the credentials: no token, no trust in the CA.
    const anonymous = await runCli(['--api', written.apis[0]!, 'kv', 'get', 'greeting']);
    expect(anonymous.code).toBe(1);
    u.up.kill('SIGTERM');
    expect(await u.exited).toBe(0);
    stdout = u.stdout();
  });
  expect(stdout).toMatch(/stopping 3 processes\.\.\.\n(.*\n)*stopped\n$/);
  for (const m of managers) expect(await refused(Number(m.apiAddress.split(':')[1]))).toBe(true);
}, 240_000);

it('an insecure cluster: up names its managers (http) in the credentials file, over a secure cluster\'s file, and commands reach it with no flags', async () => {
  const managers = [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: './data-insecure/m1' }];
  const configPath = join(dir, 'insecure.json');
  writeFileSync(configPath, JSON.stringify({ insecure: true, managers, raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 400 } }));
  // What an earlier secure cluster left: its managers are not this one.
  const credentials = join(dir, 'home-insecure', 'config.json');
  mkdirSync(join(dir, 'home-insecure'));
  writeFileSync(credentials, JSON.stringify({ clusterId: 'old', apis: ['https://127.0.0.1:1'], ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', token: 'mk_0123456789abcdef_s' }));
  await withUp(configPath, credentials, async (u) => {
    const leaderLine = /^leader: m1 \(term \d+\) at http:\/\/127\.0\.0\.1:\d+$/m;
    await waitFor('up to name the leader', () => leaderLine.test(u.stdout()), 120_000, 100).catch(() => undefined);
    expect(u.stdout(), u.stderr()).toMatch(leaderLine);
    expect(u.stdout()).toContain(`The API addresses are in ${credentials}`);
    expect(JSON.parse(readFileSync(credentials, 'utf8'))).toEqual({ clusterId: 'insecure', apis: [`http://${managers[0]!.apiAddress}`], insecure: true });
    expect(statSync(credentials).mode & 0o077).toBe(0);
    const put = await runCli(['kv', 'put', 'greeting', 'plain'], { MINKUBE_CONFIG: credentials }, tmpdir());
    expect(put.code, put.stderr).toBe(0);
    expect((await runCli(['kv', 'get', 'greeting'], { MINKUBE_CONFIG: credentials }, tmpdir())).stdout).toBe('plain');
    u.up.kill('SIGTERM');
    expect(await u.exited).toBe(0);
  });
}, 240_000);

it('after the bootstrap token was revoked, up says so, names the leader through GET /status, and stops sending the revoked token', async () => {
  const host = '127.0.0.1';
  const [raftPort, apiPort] = await freePorts(2, host);
  const managers = [{ id: 'm1', raftAddress: `${host}:${raftPort!}`, apiAddress: `${host}:${apiPort!}`, dataDir: './data-revoked/m1' }];
  const configPath = join(dir, 'revoked.json');
  writeFileSync(configPath, JSON.stringify({ managers, raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 400 } }));
  const credentials = join(dir, 'home-revoked', 'config.json');
  const withCredentials = { MINKUBE_CONFIG: credentials };
  const leaderLine = /^leader: m1( \(term \d+\))? at https:\/\/127\.0\.0\.1:\d+$/m;

  // As docs/security.md advises: another admin token first, then the bootstrap token revoked with it.
  let admin2 = '';
  await withUp(configPath, credentials, async (u) => {
    await waitFor('up to name the leader', () => leaderLine.test(u.stdout()), 120_000, 100).catch(() => undefined);
    expect(u.stdout(), u.stderr()).toMatch(leaderLine);
    const created = await eventually(async () => {
      const r = await runCli(['token', 'create', '--role', 'admin', '--name', 'admin2'], withCredentials, tmpdir());
      return r.code === 0 ? r : undefined;
    }, 30_000, 'an admin token');
    admin2 = created.stdout.trim();
    const revoked = await runCli(['token', 'revoke', 'bootstrap'], { ...withCredentials, MINKUBE_TOKEN: admin2 }, tmpdir());
    expect(revoked.code, revoked.stderr).toBe(0);
    u.up.kill('SIGTERM');
    expect(await u.exited).toBe(0);
  });

  const auditPath = join(dir, 'data-revoked', 'm1', 'audit.log');
  const auditLines = (): { op?: string; target?: string; route?: string; outcome: string }[] =>
    readFileSync(auditPath, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { outcome: string });
  const refusedPolls = (): number => auditLines().filter((l) => l.outcome === 'UNAUTHENTICATED' && l.route === 'GET /v1/cluster').length;
  const refusedBefore = refusedPolls();
  const putAudited = (key: string) => (): boolean => auditLines().some((l) => l.op === 'put' && l.target === key);

  await withUp(configPath, credentials, async (u) => {
    const warned = /^warning: https:\/\/127\.0\.0\.1:\d+ refuses the admin token of .*admin\.token \(401 UNAUTHENTICATED\): it was revoked/m;
    await waitFor('up to warn of the revoked token', () => warned.test(u.stderr()), 120_000, 100).catch(() => undefined);
    expect(u.stderr(), u.stdout()).toMatch(warned);
    expect(u.stderr()).toContain(`${credentials} holds that token, so minkube commands that use it fail`);
    expect(u.stderr()).toContain('MINKUBE_TOKEN=<an admin token> minkube ...');
    // The leader is still named, from the open GET /status.
    await waitFor('up to name the leader', () => leaderLine.test(u.stdout()), 60_000, 100).catch(() => undefined);
    expect(u.stdout(), u.stderr()).toMatch(leaderLine);
    // What the warning says: the file's token is refused, another token works.
    const refused = await runCli(['kv', 'get', 'x'], withCredentials, tmpdir());
    expect(refused.stderr).toContain('UNAUTHENTICATED');
    const live = { ...withCredentials, MINKUBE_TOKEN: admin2 };
    // Two writes the audit trail records in turn: whatever up sent before its warning is on disk by the first; if
    // up still polled with the revoked token, the trail would gain its refusals (4 a second) by the second.
    expect((await runCli(['kv', 'put', 'revoked-1', 'v'], live, tmpdir())).code).toBe(0);
    await waitFor('the first put in the audit trail', putAudited('revoked-1'), 10_000, 50);
    const refusedAtWarning = refusedPolls();
    expect(refusedAtWarning - refusedBefore).toBeLessThanOrEqual(3);
    expect((await runCli(['status'], live, tmpdir())).code).toBe(0);
    expect((await runCli(['kv', 'put', 'revoked-2', 'v'], live, tmpdir())).code).toBe(0);
    await waitFor('the second put in the audit trail', putAudited('revoked-2'), 10_000, 50);
    expect(refusedPolls()).toBe(refusedAtWarning);
    u.up.kill('SIGTERM');
    expect(await u.exited).toBe(0);
  });
}, 300_000);
