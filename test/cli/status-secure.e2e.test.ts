// `minkube status` against a secure cluster through its credentials file, with real processes. The command asks the
// managers the file names at once, beside the first (src/cli/status.ts askEarly): every member still gets its own
// row, an address the file names that is no member shows nowhere (one that never answers is abandoned once the
// member list is known), and a manager named alone by --api that cannot be reached fails the command. Without --api
// the file's managers are a list: with the first one killed, commands go to the next.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { freePort, ProcCluster } from '../support/cluster.js';

let c: ProcCluster;
let credentials: { apis: string[] } & Record<string, unknown>;
let credentialsPath: string;
/** Accepts connections and never answers: a stranger the credentials file names. */
let silent: Server;
const silentSockets: Socket[] = [];

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 0, secure: true });
  c.startAll();
  await c.waitForLeader({ timeoutMs: 60_000 });
  credentialsPath = join(c.dir, '.minkube', 'credentials.json');
  credentials = JSON.parse(readFileSync(credentialsPath, 'utf8')) as typeof credentials;
  silent = createServer((s) => silentSockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
}, 120_000);

afterAll(async () => {
  for (const s of silentSockets) s.destroy();
  silent?.close();
  await c?.cleanup();
});

/** Rows of the table: [leader mark, id, role, reachable]. */
function rowsOf(stdout: string): string[][] {
  return stdout
    .trimEnd()
    .split('\n')
    .slice(1)
    .filter((l) => /^[* ] /.test(l))
    .map((l) => {
      const cells = l.slice(1).trim().split(/\s+/);
      return [l[0] === '*' ? '*' : '', cells[0]!, cells[1]!, cells[6]!];
    });
}

describe('minkube status with a credentials file', () => {
  it('shows every member from its own answer', async () => {
    const r = await runCli(['status'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = rowsOf(r.stdout);
    expect(rows.map((row) => [row[1], row[3]])).toEqual([['m1', 'yes'], ['m2', 'yes'], ['m3', 'yes']]);
    expect(rows.filter((row) => row[0] === '*' && row[2] === 'leader')).toHaveLength(1);
    expect(r.stdout).toMatch(/^leader: m[123] \(term \d+\)$/m);
  });

  it('is the same when the file names a stranger and a closed port, and misses a member', async () => {
    const { port } = silent.address() as { port: number };
    const closed = await freePort();
    const path = join(c.dir, 'credentials-with-strangers.json');
    // m3 missing: it is asked once the first answer names it.
    writeFileSync(path, JSON.stringify({ ...credentials, apis: [credentials.apis[0], `https://127.0.0.1:${port}`, `https://127.0.0.1:${closed}`, credentials.apis[1]] }));
    const json = await runCli(['--json', 'status'], { MINKUBE_CONFIG: path });
    // The file is brought in step with the members the leader names: the stranger and the closed port go, m3 comes.
    expect(json.stderr).toMatch(/^the credentials file .*credentials-with-strangers\.json now names the managers https:\/\/\S+, https:\/\/\S+, https:\/\/\S+\n$/);
    expect((JSON.parse(readFileSync(path, 'utf8')) as { apis: string[] }).apis.sort()).toEqual([...credentials.apis].sort());
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as { leaderId: string; members: { id: string; reachable: boolean; apiAddress: string }[] };
    expect(out.members.map((m) => [m.id, m.reachable])).toEqual([['m1', true], ['m2', true], ['m3', true]]);
    expect(json.stdout).not.toContain(String(port));
    expect(json.stdout).not.toContain(String(closed));
    expect(silentSockets.length).toBeGreaterThan(0);
    const text = await runCli(['status'], { MINKUBE_CONFIG: path });
    expect(text.code).toBe(0);
    expect(rowsOf(text.stdout).map((row) => [row[1], row[3]])).toEqual([['m1', 'yes'], ['m2', 'yes'], ['m3', 'yes']]);
  });

  it('fails as before when the first manager cannot be reached, whatever the others', async () => {
    const closed = await freePort();
    const r = await runCli(['--api', `127.0.0.1:${closed}`, 'status'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: UNREACHABLE: /);
  });
});

describe('minkube with the first manager of the credentials file down', () => {
  it('status, kv put and kv get go to the next manager; the first shows as down', async () => {
    const first = c.managerIds[0]!;
    expect(credentials.apis[0]).toBe(c.url(first));
    await c.signal(first, 'SIGKILL');
    await c.waitForLeader({ timeoutMs: 30_000, among: c.managerIds.filter((id) => id !== first) });
    const env = { MINKUBE_CONFIG: credentialsPath };
    const put = await runCli(['kv', 'put', 'after/first-down', 'yes'], env);
    expect(put.stderr).toBe('');
    expect(put.stdout).toMatch(/^after\/first-down: version \d+$/m);
    expect(await runCli(['kv', 'get', 'after/first-down'], env)).toEqual({ code: 0, stdout: 'yes', stderr: '' });
    const status = await runCli(['status'], env);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(rowsOf(status.stdout).map((row) => [row[1], row[2], row[3]])).toContainEqual([first, 'down', 'no']);
  });
});
