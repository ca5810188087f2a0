// The outside tester's cluster end to end, real processes, secure: a busy host's timings (raft 100/1000 ms, workers
// beating every 1 s, TTL 10 s, grace 5 s). m4 joins with a join token and no --config; it keeps the cluster's
// settings in <dataDir>/cluster.json (0600) and, made leader with a transfer, runs with them: the settings the
// cluster answers are its own then, and the worker stays ready under it (on the defaults, a 2 s TTL, it was judged
// unreachable between two records of its liveness, and its tasks lost and run again). Restarted from its data
// directory alone, it starts from that file; `minkube reload` through it re-reads the file.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { eventually, ProcCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

let c: ProcCluster;
let leader: string;

const busyHost = {
  raft: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 },
  extra: {
    tasks: { workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000, retention: { finishedMax: 300, finishedAgeS: 7200 } },
    tls: { certLifetimeS: 20 * 86_400 },
    backup: { dir: 'backups', intervalS: 7200, retain: 2 },
    scheduler: { preemption: true },
    api: { rateLimitAnonymous: { requestsPerS: 40, burst: 80 } },
  },
};

beforeAll(async () => {
  c = await ProcCluster.create({
    managers: 3, workers: 1, workerRuntime: 'process', secure: true, hostPrefix: '127.0.65.', workerHost: '127.0.65.9', ports: { min: 20000, max: 29999 }, ...busyHost,
  });
  c.startAll();
  leader = await c.waitForLeader({ timeoutMs: 60_000 });
  await c.waitForReadyWorkers(1, { manager: leader, timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
});

type Settings = { leaderId: string; settings: { tasks: Record<string, unknown>; [section: string]: unknown } };
async function settings(via: string): Promise<Settings> {
  const res = await c.http(via, 'GET', '/v1/cluster/settings', undefined, 10_000);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as unknown as Settings;
}

async function transferTo(id: string): Promise<void> {
  await eventually(async () => {
    const res = await c.http('m1', 'POST', '/v1/cluster/leader', { id }, 15_000);
    return res.status === 200 && res.body.leaderId === id ? true : undefined;
  }, 60_000, `${id} to lead`);
}

const log = (id: string): string => readFileSync(join(c.dir, `${id}.log`), 'utf8');

it("m4 joins without --config, keeps the cluster's settings, and runs with them when it leads, restarted too", async () => {
  const theirs = await settings(leader);
  expect(theirs.settings.tasks).toMatchObject({ workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000 });

  const created = await c.http(leader, 'POST', '/v1/auth/tokens', { role: 'manager', ttlS: 600 });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const tokenFile = join(c.dir, 'm4.token');
  writeFileSync(tokenFile, `${created.body.token as string}\n`, { mode: 0o600 });
  const self = await c.addManagerNode('m4', 4);
  const flags = ['--raft-address', self.raftAddress, '--api-address', self.apiAddress, '--data-dir', self.dataDir];
  c.start('m4', ['--join', c.url(leader), '--token-file', tokenFile, ...flags], { withConfig: false });
  await eventually(async () => {
    const members = (await c.http(leader, 'GET', '/v1/cluster/members')).body.members as { id: string; voter: boolean }[] | undefined;
    return members?.find((m) => m.id === 'm4')?.voter === true ? true : undefined;
  }, 60_000, 'm4 to become a voter');

  const kept = join(self.dataDir, 'cluster.json');
  expect(statSync(kept).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(kept, 'utf8'))).toEqual({ managers: [{ id: 'm4', ...self }], ...theirs.settings });
  expect(log('m4')).not.toContain('without a config file');

  // Leading, m4 applies its own settings: the cluster's. The worker stays ready across two records of its liveness
  // (every max(1 s, 10 s / 3)); under a 2 s TTL it was unreachable between them.
  await transferTo('m4');
  expect(await settings('m1')).toEqual({ leaderId: 'm4', settings: theirs.settings });
  const states = new Set<string>();
  const beats = new Set<string>();
  await waitFor('two records of w1 liveness under m4', async () => {
    const w = await c.http('m4', 'GET', '/v1/workers/w1', undefined, 5000);
    if (w.status !== 200) return false;
    states.add(w.body.state as string);
    beats.add(w.body.lastHeartbeatAt as string);
    return beats.size >= 3;
  }, 30_000, 250);
  expect([...states]).toEqual(['ready']);
  expect((await settings('m1')).leaderId).toBe('m4');
  expect(log('m4')).not.toContain('leading without a config file');

  // Restarted from its data directory alone, it runs from the file: leading again, the same settings.
  await c.signal('m4', 'SIGTERM');
  c.start('m4', ['--data-dir', self.dataDir], { withConfig: false });
  await transferTo('m4');
  expect(await settings('m1')).toEqual({ leaderId: 'm4', settings: theirs.settings });

  // `minkube reload` through m4 re-reads its cluster.json.
  const file = JSON.parse(readFileSync(kept, 'utf8')) as { tasks: Record<string, unknown> };
  writeFileSync(kept, JSON.stringify({ ...file, tasks: { ...file.tasks, lostGraceMs: 6000 } }));
  const reload = await runCli(['--api', c.url('m4'), 'reload', '--json'], { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json') });
  expect(reload.code, reload.stderr).toBe(0);
  expect(JSON.parse(reload.stdout)).toEqual({ node: 'm4', applied: [{ key: 'tasks.lostGraceMs', from: 5000, to: 6000 }], refused: [], ignored: [] });
  expect((await settings('m1')).settings.tasks).toMatchObject({ lostGraceMs: 6000, workerTtlMs: 10_000 });
  expect(log('m4')).not.toContain('without a config file');
}, 240_000);
