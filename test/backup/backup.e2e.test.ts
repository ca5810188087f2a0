// Backups end to end with real processes in a closed cluster: keys and tasks (process runtime) written, `minkube
// snapshot save`, every manager stopped and wiped, `snapshot restore` into m1 (beside a stale marker), m1 started
// alone and the others joined with --join; every key, task and worker record is back. A truncated or altered file is
// refused by inspect and restore with SNAPSHOT_INVALID and exit 1; an operator may not download a snapshot. The file
// names the cluster that saved it; restoring one emptied manager while the others run is refused (RESTORE_REFUSED,
// nothing written) unless --force.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { FileMarker, markerPathFor } from '../../src/storage/marker.js';
import { runCli } from '../support/cli.js';
import { eventually, ProcCluster } from '../support/cluster.js';

let c: ProcCluster;
let credentialsPath: string;
const keys = Array.from({ length: 40 }, (_, i) => `backup/k${i}`);
const taskIds: string[] = [];

function mk(args: string[]): ReturnType<typeof runCli> {
  return runCli(args, { MINKUBE_CONFIG: credentialsPath });
}

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 1, workerRuntime: 'process', secure: true, extra: { backup: { intervalS: 1, retain: 2, dir: 'backups' } } });
  c.startAll();
  await c.waitForLeader({ timeoutMs: 60_000 });
  credentialsPath = join(c.dir, '.minkube', 'credentials.json');
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
});

async function leaderNow(): Promise<string> {
  return c.waitForLeader({ timeoutMs: 60_000 });
}

describe('snapshot save, inspect and restore (real processes, secure cluster)', () => {
  it('restores every key, task and worker record into a new cluster that the others join', async () => {
    const leader = await leaderNow();
    for (const [i, k] of keys.entries()) expect((await c.http(leader, 'PUT', `/v1/kv/${k}`, { value: `v${i}` })).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      const r = await c.http(leader, 'POST', '/v1/tasks', { name: `t${i}`, image: 'local', command: ['sh', '-c', `echo task-${i}`] });
      expect(r.status).toBe(201);
      taskIds.push(r.body.id as string);
    }
    for (const id of taskIds) {
      await eventually(async () => ((await c.http(leader, 'GET', `/v1/tasks/${id}`)).body?.state === 'succeeded' ? true : undefined), 60_000, `task ${id} to succeed`);
    }
    // Scheduled backups (backup.intervalS 1, retain 2): the leader writes them, every manager reports the newest.
    await eventually(
      async () => {
        const views = await Promise.all(c.managerIds.map((id) => c.http(id, 'GET', '/v1/cluster')));
        return views.every((v) => typeof v.body?.backup?.lastIndex === 'number' && v.body.backup.lastIndex > 0 && v.body.backup.lastError === null) ? true : undefined;
      },
      30_000,
      'every manager to report a scheduled backup',
    );
    await eventually(async () => (readdirSync(join(c.dir, 'backups')).filter((n) => n.endsWith('.mksnap')).length === 2 ? true : undefined), 30_000, 'two backups kept');
    const metrics = await c.http(leader, 'GET', '/metrics');
    expect(String(metrics.body)).toMatch(/minkube_backup_last_success_timestamp_seconds \d{10}/);
    expect(readdirSync(join(c.dir, 'backups')).filter((n) => n.endsWith('.mksnap')).length).toBeLessThanOrEqual(2);
    const file = join(c.dir, 'backup.mksnap');
    // Through a follower: the snapshot still holds every acknowledged write (a linearizable barrier first).
    const follower = c.managerIds.find((id) => id !== leader)!;
    const saved = await mk(['--api', c.url(follower), 'snapshot', 'save', file]);
    expect(saved.stderr).toBe('');
    expect(saved.code).toBe(0);
    expect(saved.stdout).toMatch(/saved the snapshot at index \d+ \(term \d+\)/);
    // It holds secrets: the owner's alone, whatever the umask (the harness's is the usual 022), as are the scheduled ones.
    expect(statSync(file).mode & 0o777).toBe(0o600);
    for (const n of readdirSync(join(c.dir, 'backups'))) expect(statSync(join(c.dir, 'backups', n)).mode & 0o777).toBe(0o600);

    const inspected = await mk(['--json', 'snapshot', 'inspect', file]);
    expect(inspected.code).toBe(0);
    const summary = JSON.parse(inspected.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ keys: keys.length, tasks: taskIds.length, workers: 1, members: 3, checksum: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) as string });
    const table = await mk(['snapshot', 'inspect', file]);
    expect(table.stdout).toMatch(/INDEX\s+TERM\s+SIZE\s+CHECKSUM\s+KEYS\s+TASKS\s+WORKERS\s+MEMBERS/);

    for (const id of c.managerIds) await c.signal(id, 'SIGKILL');
    for (const id of c.managerIds) c.wipe(id);
    // The wipe (rm -rf) keeps m1's marker beside its data directory; make it say a later term than the file's, as
    // after elections since the backup: restore must replace it, or m1 starts recovering and never leads.
    const stale = new FileMarker(markerPathFor(join(c.dir, 'm1')));
    expect((await stale.read()).kind).toBe('ok');
    await stale.write({ ackedIndex: 1_000_000, ackedTerm: 1000, term: 1000, vote: nodeId('m2') });
    await stale.close();

    const restored = await mk(['snapshot', 'restore', file, '--id', 'm1', '--data-dir', join(c.dir, 'm1'), '--config', c.configPath]);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`${keys.length} keys, ${taskIds.length} tasks, 1 workers`);
    // A second restore into the same (now full) directory is refused.
    const again = await mk(['snapshot', 'restore', file, '--id', 'm1', '--data-dir', join(c.dir, 'm1'), '--config', c.configPath]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: CONFIG_INVALID: .*not empty/);

    c.start('m1');
    await c.waitForLeader({ among: ['m1'], timeoutMs: 60_000 });
    const members = await c.http('m1', 'GET', '/v1/cluster/members');
    expect((members.body.members as { id: string }[]).map((m) => m.id)).toEqual(['m1']);
    for (const id of ['m2', 'm3']) c.start(id, ['--join', c.url('m1')]);
    await eventually(
      async () => {
        const r = await c.http('m1', 'GET', '/v1/cluster/members');
        const voters = (r.body?.members as { id: string; voter: boolean }[] | undefined)?.filter((m) => m.voter).map((m) => m.id).sort();
        return voters?.join(',') === 'm1,m2,m3' ? true : undefined;
      },
      90_000,
      'm2 and m3 to join as voters',
    );
    for (const id of c.managerIds) {
      for (const [i, k] of keys.entries()) expect((await c.http(id, 'GET', `/v1/kv/${k}`)).body.value, `${k} on ${id}`).toBe(`v${i}`);
      for (const t of taskIds) expect((await c.http(id, 'GET', `/v1/tasks/${t}`)).body.state, `task ${t} on ${id}`).toBe('succeeded');
      expect((await c.http(id, 'GET', '/v1/workers/w1')).status, `worker w1 on ${id}`).toBe(200);
    }
    // The restored cluster takes writes and the worker still runs tasks for it.
    const leaderAfter = await leaderNow();
    expect((await c.http(leaderAfter, 'PUT', '/v1/kv/after', { value: 'x' })).status).toBe(200);
    const more = await c.http(leaderAfter, 'POST', '/v1/tasks', { image: 'local', command: ['sh', '-c', 'echo after'] });
    await eventually(async () => ((await c.http(leaderAfter, 'GET', `/v1/tasks/${more.body.id as string}`)).body?.state === 'succeeded' ? true : undefined), 60_000, 'a task after the restore');
  }, 300_000);

  it('refuses a truncated or altered file with SNAPSHOT_INVALID, in inspect and in restore', async () => {
    const whole = readFileSync(join(c.dir, 'backup.mksnap'));
    const truncated = join(c.dir, 'truncated.mksnap');
    writeFileSync(truncated, whole.subarray(0, whole.length - 100));
    const altered = join(c.dir, 'altered.mksnap');
    const flipped = Buffer.from(whole);
    flipped[flipped.length - 50] = flipped[flipped.length - 50]! ^ 0xff;
    writeFileSync(altered, flipped);
    const garbage = join(c.dir, 'garbage.mksnap');
    writeFileSync(garbage, 'not a snapshot at all');
    for (const [file, problem] of [[truncated, /truncated/], [altered, /checksum mismatch/], [garbage, /not a Minkube snapshot file/]] as const) {
      const inspected = await mk(['snapshot', 'inspect', file]);
      expect(inspected.code, file).toBe(1);
      expect(inspected.stderr).toMatch(/^error: SNAPSHOT_INVALID: /);
      expect(inspected.stderr).toMatch(problem);
      const dir = join(c.dir, `restore-${file.length}-${Math.random().toString(36).slice(2)}`);
      mkdirSync(dir);
      const restored = await mk(['snapshot', 'restore', file, '--id', 'x1', '--data-dir', dir, '--raft-address', '127.0.0.1:1', '--api-address', '127.0.0.1:2']);
      expect(restored.code, file).toBe(1);
      expect(restored.stderr).toMatch(/^error: SNAPSHOT_INVALID: /);
      expect(restored.stderr).toMatch(problem);
    }
    // A path save cannot write is refused before the snapshot is fetched, in words, and leaves nothing behind.
    const missing = join(c.dir, 'no-such-folder', 'x.mksnap');
    expect(await mk(['snapshot', 'save', missing])).toMatchObject({ code: 1, stderr: `error: INVALID_PARAM: cannot write ${missing}.partial: its folder does not exist\n` });
    expect(await mk(['snapshot', 'save', c.dir])).toMatchObject({ code: 1, stderr: `error: INVALID_PARAM: cannot write ${c.dir}: it is a folder\n` });
    expect(existsSync(`${c.dir}.partial`)).toBe(false);
  });

  it('answers GET /v1/snapshot to admins only', async () => {
    const leader = await leaderNow();
    const created = await c.http(leader, 'POST', '/v1/auth/tokens', { name: 'op-1', role: 'operator' });
    expect(created.status).toBe(201);
    const r = await c.http(leader, 'GET', '/v1/snapshot', undefined, 5000, { token: created.body.token as string });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('snapshot:write') as string });
    // snapshot:write alone is not enough: the file holds the session key, with which any token's session can be signed.
    const almostAdmin = { name: 'almost-admin', rules: [{ effect: 'allow', resource: '*', verbs: ['*'] }, { effect: 'deny', resource: 'kv', verbs: ['write'], keyPrefix: 'secret/' }] };
    const almost = await c.http(leader, 'POST', '/v1/auth/tokens', { policy: almostAdmin });
    expect(almost.status, JSON.stringify(almost.body)).toBe(201);
    const refused = await c.http(leader, 'GET', '/v1/snapshot', undefined, 5000, { token: almost.body.token as string });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({
      code: 'FORBIDDEN',
      message: 'this token (role almost-admin) lacks kv:write on keys under "secret/": a snapshot holds the session key and every token hash, so only a token with every permission may take one',
    });
  });

  it("a file saved when the newest entry is a new leader's no-op (nothing written since the election) verifies and inspects", async () => {
    const leader = await leaderNow();
    const other = c.managerIds.find((id) => id !== leader && c.node(id).proc !== null)!;
    const moved = await c.http(leader, 'POST', '/v1/cluster/leader', { id: other }, 10_000);
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    const file = join(c.dir, 'after-election.mksnap');
    const saved = await mk(['--api', c.url(other), '--json', 'snapshot', 'save', file]);
    expect(saved.code, saved.stderr).toBe(0);
    const inspected = await mk(['--json', 'snapshot', 'inspect', file]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ index: JSON.parse(saved.stdout).index });
  }, 60_000);

  it('refuses to restore one emptied manager while the others run, naming them and writing nothing; --force proceeds with a warning', async () => {
    const file = join(c.dir, 'backup.mksnap');
    const clusterId = readFileSync(join(c.dir, '.minkube', 'cluster-id'), 'utf8').trim();
    expect(JSON.parse((await mk(['--json', 'snapshot', 'inspect', file])).stdout)).toMatchObject({ clusterId });
    await leaderNow();
    await c.signal('m3', 'SIGKILL');
    c.wipe('m3');
    const dataDir = join(c.dir, 'm3');
    const marker = readFileSync(markerPathFor(dataDir));
    const args = ['snapshot', 'restore', file, '--id', 'm3', '--data-dir', dataDir, '--config', c.configPath];

    const refused = await mk(args);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toContain(`error: RESTORE_REFUSED: managers m1 (${c.url('m1')}), m2 (${c.url('m2')}) of ${c.configPath} answer: snapshot restore rebuilds a cluster from one manager and needs every manager stopped`);
    expect(refused.stderr).toContain(`minkube member remove m3, then minkube manager --config ${c.configPath} --id m3 --join URL`);
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(`${dataDir}.restoring`)).toBe(false);
    expect(readFileSync(markerPathFor(dataDir))).toEqual(marker);

    const forced = await mk([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toBe(`warning: restored with --force while m1 (${c.url('m1')}), m2 (${c.url('m2')}) answered: m3 starts as a cluster of its own; stop those managers for good before starting it, or the two clusters take writes apart\n`);
    expect(readdirSync(dataDir)).toContain('CURRENT');
  }, 60_000);
});
