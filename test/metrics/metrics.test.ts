// The metrics as a scraper sees them: every name the README lists with its type, labels from closed sets (route
// templates, never keys), values read at scrape time; GET /metrics behind the auth plugin (viewer yes, developer no);
// GET /status's verdicts and its two formats.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import type { TokenRecord } from '../../src/api/auth.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { judgeStatus, type StatusFacts } from '../../src/api/routes/status.js';
import type { TaskRecord, TaskState } from '../../src/contracts/task-model.js';
import { ManagerMetrics, type ManagerMetricsSources } from '../../src/manager/metrics.js';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { managerObservability, workerObservability } from '../../src/daemon/metrics.js';
import { readFdLimit } from '../../src/lib/fds.js';
import { MetricsRegistry } from '../../src/lib/metrics.js';
import { newApiToken } from '../../src/security/tokens.js';
import { WorkerMetrics } from '../../src/worker/metrics.js';
import { FakeManagerService } from '../api/fake-service.js';
import { HealthMonitor } from '../../src/worker/health.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

/** name -> type, from the # TYPE lines. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Every sample: its name and labels. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
      if (m === null) throw new Error(`not a sample line: ${l}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** The rows of README's metrics table headed `heading`: the names in the first cell, the type in the second. */
function readmeTable(heading: string): { names: string[]; type: string }[] {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${heading} |`));
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  return lines.slice(start + 2, end).map((l) => {
    const [names, type] = l.split(' | ');
    return { names: [...names!.matchAll(/`(minkube_\w+)`/g)].map((x) => x[1]!), type: type! };
  });
}

const managerTypes: Record<string, string> = {
  minkube_has_leader: 'gauge',
  minkube_is_leader: 'gauge',
  minkube_leader_changes_seen_total: 'counter',
  minkube_raft_term: 'gauge',
  minkube_raft_commit_index: 'gauge',
  minkube_raft_applied_index: 'gauge',
  minkube_proposals_committed_total: 'counter',
  minkube_proposals_applied_total: 'counter',
  minkube_proposals_pending: 'gauge',
  minkube_proposals_failed_total: 'counter',
  minkube_disk_fsync_duration_seconds: 'histogram',
  minkube_snapshot_save_duration_seconds: 'histogram',
  minkube_snapshot_size_bytes: 'gauge',
  minkube_data_dir_free_bytes: 'gauge',
  minkube_peer_round_trip_time_seconds: 'histogram',
  minkube_peer_sent_bytes_total: 'counter',
  minkube_http_request_duration_seconds: 'histogram',
  minkube_tasks: 'gauge',
  minkube_workers: 'gauge',
  minkube_scheduling_delay_seconds: 'histogram',
  minkube_task_failures_total: 'counter',
};

const workerTypes: Record<string, string> = {
  minkube_host_cpu_utilization: 'gauge',
  minkube_host_memory_total_bytes: 'gauge',
  minkube_host_memory_available_bytes: 'gauge',
  minkube_host_disk_free_bytes: 'gauge',
  minkube_containers: 'gauge',
  minkube_task_starts_total: 'counter',
  minkube_task_start_duration_seconds: 'histogram',
  minkube_health_check_failures_total: 'counter',
  minkube_heartbeat_duration_seconds: 'histogram',
};

function fakeSources(over: Partial<ManagerMetricsSources> = {}): ManagerMetricsSources {
  const counts: Partial<Record<TaskState, number>> = { pending: 4, running: 2 };
  return {
    raft: () => ({ term: 7, commitIndex: 120, role: 'leader', leaderId: 'm1' }),
    appliedIndex: () => 118,
    pendingProposals: () => 3,
    countTasksIn: (s) => counts[s] ?? 0,
    workers: () => [{ state: 'ready' }, { state: 'ready' }, { state: 'unreachable' }],
    peerBytesSent: () => new Map([['m2', 1000], ['m3', 2000]]),
    dataDirFreeBytes: () => 5 * 2 ** 30,
    ...over,
  };
}

function task(state: TaskState, history: [TaskState, number][], error: TaskRecord['error'] = null): TaskRecord {
  return {
    id: 't1', spec: { image: 'x' }, state, desiredState: 'run', workerId: 'w1', attempt: 1, term: 1, containerId: null, exitCode: null, error,
    notBeforeMs: 0, createdAt: '', updatedAt: '', history: history.map(([s, atMs]) => ({ state: s, attempt: 1, atMs, workerId: null })),
  };
}

describe('a manager\'s metrics', () => {
  it('has every listed name with its type, plus the process defaults, and no job or instance label', async () => {
    const m = new ManagerMetrics();
    m.attach(fakeSources());
    const text = await m.registry.render();
    const t = types(text);
    for (const [name, type] of Object.entries(managerTypes)) expect(t.get(name), name).toBe(type);
    expect(t.get('process_cpu_seconds_total')).toBe('counter');
    expect(t.get('process_resident_memory_bytes')).toBe('gauge');
    for (const s of samples(text)) {
      expect(s.labels).not.toHaveProperty('job');
      expect(s.labels).not.toHaveProperty('instance');
    }
  });

  it("README's table lists each of its names once, with the type it has", async () => {
    const m = new ManagerMetrics();
    m.attach(fakeSources());
    const t = types(await m.registry.render());
    const rows = readmeTable('manager metric');
    const names = rows.flatMap((r) => r.names);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    // Registered by the daemon, and only with a backup section (src/daemon/manager.ts).
    const elsewhere = new Set(['minkube_backup_last_success_timestamp_seconds']);
    for (const r of rows) for (const n of r.names.filter((x) => !elsewhere.has(x))) expect(t.get(n), n).toBe(r.type);
  });

  it('reads Raft, tasks, workers and peers when scraped', async () => {
    let term = 7;
    const m = new ManagerMetrics({ processDefaults: false });
    m.attach(fakeSources({ raft: () => ({ term, commitIndex: 120, role: 'follower', leaderId: null }) }));
    let text = await m.registry.render();
    expect(sampleValue(text, 'minkube_raft_term')).toBe(7);
    expect(sampleValue(text, 'minkube_has_leader')).toBe(0);
    expect(sampleValue(text, 'minkube_is_leader')).toBe(0);
    expect(sampleValue(text, 'minkube_raft_commit_index')).toBe(120);
    expect(sampleValue(text, 'minkube_raft_applied_index')).toBe(118);
    expect(sampleValue(text, 'minkube_proposals_committed_total')).toBe(120);
    expect(sampleValue(text, 'minkube_proposals_applied_total')).toBe(118);
    expect(sampleValue(text, 'minkube_proposals_pending')).toBe(3);
    expect(sampleValue(text, 'minkube_tasks', { state: 'pending' })).toBe(4);
    expect(sampleValue(text, 'minkube_tasks', { state: 'lost' })).toBe(0);
    expect(sampleValue(text, 'minkube_workers', { state: 'ready' })).toBe(2);
    expect(sampleValue(text, 'minkube_workers', { state: 'unreachable' })).toBe(1);
    expect(sampleValue(text, 'minkube_peer_sent_bytes_total', { peer: 'm3' })).toBe(2000);
    term = 8;
    text = await m.registry.render();
    expect(sampleValue(text, 'minkube_raft_term')).toBe(8);
  });

  it('counts leader changes, failed proposals by code, syncs, snapshots, round trips, delays and failures', async () => {
    const m = new ManagerMetrics({ processDefaults: false });
    m.attach(fakeSources());
    m.roleChanged('m1');
    m.roleChanged(null);
    m.roleChanged('m1');
    m.roleChanged('m2');
    m.proposalFailed('NO_LEADER');
    m.proposalFailed('NO_LEADER');
    m.proposalFailed('TIMEOUT');
    m.fsyncTimer()();
    m.snapshotSaved(4096, 0.2);
    m.heartbeatSent('m2');
    m.heartbeatAnswered('m2');
    m.heartbeatAnswered('m2'); // no heartbeat in flight: not timed
    m.taskChanged(task('scheduled', [['pending', 1000], ['scheduled', 1500]]), task('pending', [['pending', 1000]]));
    m.taskChanged(task('running', [['pending', 1000], ['scheduled', 1500], ['running', 3500]]), task('scheduled', [['pending', 1000], ['scheduled', 1500]]));
    m.taskChanged(task('failed', [['running', 1], ['failed', 2]], { class: 'permanent', message: 'exit 1' }), task('running', [['running', 1]]));
    const text = await m.registry.render();
    expect(sampleValue(text, 'minkube_leader_changes_seen_total')).toBe(2);
    expect(sampleValue(text, 'minkube_proposals_failed_total', { reason: 'NO_LEADER' })).toBe(2);
    expect(sampleValue(text, 'minkube_proposals_failed_total', { reason: 'TIMEOUT' })).toBe(1);
    expect(sampleValue(text, 'minkube_disk_fsync_duration_seconds_count')).toBe(1);
    expect(sampleValue(text, 'minkube_snapshot_save_duration_seconds_count')).toBe(1);
    expect(sampleValue(text, 'minkube_snapshot_size_bytes')).toBe(4096);
    expect(sampleValue(text, 'minkube_data_dir_free_bytes')).toBe(5 * 2 ** 30);
    expect(sampleValue(text, 'minkube_peer_round_trip_time_seconds_count', { peer: 'm2' })).toBe(1);
    expect(sampleValue(text, 'minkube_scheduling_delay_seconds_sum', { phase: 'placed' })).toBeCloseTo(0.5);
    expect(sampleValue(text, 'minkube_scheduling_delay_seconds_sum', { phase: 'running' })).toBeCloseTo(2);
    expect(sampleValue(text, 'minkube_task_failures_total', { class: 'permanent' })).toBe(1);
  });

  it('counts a lost attempt once: its step to lost, not again the retry that follows it with its error', async () => {
    const m = new ManagerMetrics({ processDefaults: false });
    m.attach(fakeSources());
    const running = task('running', [['running', 1]]);
    const lost = task('lost', [['running', 1], ['lost', 2]]);
    m.taskChanged(lost, running);
    m.taskChanged(task('pending', [['running', 1], ['lost', 2], ['pending', 2]], { class: 'transient', message: 'its worker w2 was lost' }), lost);
    expect(sampleValue(await m.registry.render(), 'minkube_task_failures_total', { class: 'transient' })).toBe(1);
    // One past maxAttempts: lost, then failed with the outcome's error.
    m.taskChanged(task('failed', [['running', 1], ['lost', 2], ['failed', 2]], { class: 'transient', message: 'its worker w2 was lost' }), lost);
    expect(sampleValue(await m.registry.render(), 'minkube_task_failures_total', { class: 'transient' })).toBe(1);
  });

  it('lets only the leader observe task changes, so a sum over managers counts each once', async () => {
    const m = new ManagerMetrics({ processDefaults: false });
    m.attach(fakeSources({ raft: () => ({ term: 1, commitIndex: 1, role: 'follower', leaderId: 'm2' }) }));
    m.taskChanged(task('scheduled', [['pending', 1000], ['scheduled', 1500]]), task('pending', [['pending', 1000]]));
    expect(sampleValue(await m.registry.render(), 'minkube_scheduling_delay_seconds_count', { phase: 'placed' })).toBeUndefined();
  });

  it('refuses a label named job or instance, and names outside the prefix rule', () => {
    const r = new MetricsRegistry({ processDefaults: false });
    expect(() => r.counter('x_total', 'h', ['instance'])).toThrow(/reserved/);
    expect(() => r.gauge('y', 'h', ['job'])).toThrow(/reserved/);
    expect(() => r.gauge('minkube_z', 'h')).toThrow(/prefix/);
  });
});

/** Whether util-linux's prlimit can change this process's limits (Linux with the tool installed). */
function hasPrlimit(): boolean {
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), '--nofile'], { stdio: 'ignore' });
    return readFdLimit() !== null;
  } catch {
    return false;
  }
}

describe.skipIf(!hasPrlimit())('process_max_fds', () => {
  it('is the descriptor limit when scraped: one lowered under a running node (prlimit) is seen', async () => {
    const before = readFdLimit()!;
    const value = async (r: MetricsRegistry): Promise<number | undefined> => samples(await r.render()).find((x) => x.name === 'process_max_fds')?.value;
    const registry = new MetricsRegistry();
    expect(await value(registry)).toBe(before);
    if (before === Infinity) return;
    // The soft limit only, and given back: this process is the test runner's.
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before - 1}:`]);
    try {
      expect(await value(registry)).toBe(before - 1);
      expect(await value(new MetricsRegistry())).toBe(before - 1);
    } finally {
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before}:`]);
    }
  });
});

describe("a worker's metrics", () => {
  it('has every listed name with its type', async () => {
    const w = new WorkerMetrics({ processDefaults: false });
    w.attach(() => [{ state: 'running' }, { state: 'running' }, { state: 'failed' }]);
    w.hostStats({ cpuUtilization: 0.25, memoryTotalBytes: 1000, memoryAvailableBytes: 400, diskFreeBytes: 5000 });
    w.taskStartTimer()('started');
    w.taskStartTimer()('failed');
    w.heartbeatTimer()('ok');
    w.healthCheckFailed();
    const text = await w.registry.render();
    const t = types(text);
    for (const [name, type] of Object.entries(workerTypes)) expect(t.get(name), name).toBe(type);
    expect(sampleValue(text, 'minkube_containers', { state: 'running' })).toBe(2);
    expect(sampleValue(text, 'minkube_containers', { state: 'starting' })).toBe(0);
    expect(sampleValue(text, 'minkube_host_cpu_utilization')).toBe(0.25);
    expect(sampleValue(text, 'minkube_task_starts_total', { outcome: 'failed' })).toBe(1);
    expect(sampleValue(text, 'minkube_task_start_duration_seconds_count')).toBe(1);
    expect(sampleValue(text, 'minkube_heartbeat_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    expect(sampleValue(text, 'minkube_health_check_failures_total')).toBe(1);
  });
});

describe('GET /metrics on a manager app', () => {
  const tokens = new Map<string, TokenRecord>();
  const mint = (role: string): string => {
    const { token, accessor, secretHash } = newApiToken();
    tokens.set(accessor, { role, secretHash });
    return token;
  };
  const metrics = new ManagerMetrics({ processDefaults: false });
  metrics.attach(fakeSources());
  const build = (secure: boolean): FastifyInstance =>
    buildManagerApp({
      service: new FakeManagerService(),
      metrics: { endpoint: metrics.registry, observeRequest: (r, m, c, s) => metrics.httpRequest(r, m, c, s), workerMetrics: async (id) => `# worker ${id}\n` },
      status: { facts: () => ({ leaderId: 'm1', votersReachable: 3, voters: 3, workersReady: 1, workers: 1 }) },
      ...(secure ? { security: { resolveToken: (a: string) => tokens.get(a) ?? null, sessionKey: () => randomBytes(32) } } : {}),
    });
  const secure = build(true);
  const open = build(false);
  afterAll(async () => {
    await secure.close();
    await open.close();
  });

  it('times requests by route template: fifty keys make one route label', async () => {
    for (let i = 0; i < 50; i++) await open.inject({ method: 'PUT', url: `/v1/kv/key-${i}-${randomBytes(4).toString('hex')}`, payload: { value: 'v' } });
    await open.inject({ method: 'GET', url: '/no/such/route' });
    const res = await open.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const http = samples(res.body).filter((s) => s.name === 'minkube_http_request_duration_seconds_count');
    expect(http.find((s) => s.labels.route === '/v1/kv/*' && s.labels.method === 'PUT' && s.labels.code === '200')?.value).toBe(50);
    expect(http.find((s) => s.labels.route === 'unmatched')?.labels.code).toBe('404');
    for (const s of http) expect(s.labels.route).not.toMatch(/key-/);
  });

  it('times a method a route does not take (405) by that route, not as unmatched', async () => {
    expect((await open.inject({ method: 'POST', url: '/metrics' })).statusCode).toBe(405);
    expect((await open.inject({ method: 'POST', url: '/v1/kv/some-key' })).statusCode).toBe(405);
    const res = await open.inject({ method: 'GET', url: '/metrics' });
    const http = samples(res.body).filter((s) => s.name === 'minkube_http_request_duration_seconds_count');
    expect(http.filter((s) => s.labels.code === '405').map((s) => [s.labels.method, s.labels.route]).sort()).toEqual([['POST', '/metrics'], ['POST', '/v1/kv/*']]);
  });

  it('times a path the router refuses (bad percent-encoding) under the route it would take', async () => {
    for (const url of ['/v1/kv/%FF', '/v1/workers/%C0%AF/metrics']) {
      expect([url, (await open.inject({ method: 'GET', url })).statusCode]).toEqual([url, 400]);
    }
    const res = await open.inject({ method: 'GET', url: '/metrics' });
    const http = samples(res.body).filter((s) => s.name === 'minkube_http_request_duration_seconds_count' && s.labels.code === '400');
    expect(Object.fromEntries(http.map((s) => [s.labels.route, Number(s.value)]))).toEqual({ '/v1/kv/*': 1, '/v1/workers/:id/metrics': 1 });
  });

  it('in a secure cluster: a viewer token reads it, no token is 401, a developer is 403 naming metrics:read', async () => {
    expect((await secure.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${mint('viewer')}` } })).statusCode).toBe(200);
    expect((await secure.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${mint('operator')}` } })).statusCode).toBe(200);
    expect((await secure.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const dev = await secure.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${mint('developer')}` } });
    expect(dev.statusCode).toBe(403);
    expect(dev.json().error.message).toContain('metrics:read');
    const worker = await secure.inject({ method: 'GET', url: '/v1/workers/w1/metrics', headers: { authorization: `Bearer ${mint('viewer')}` } });
    expect(worker.statusCode).toBe(200);
    expect(worker.body).toBe('# worker w1\n');
  });

  it('GET /status needs no token and answers JSON or HTML', async () => {
    const json = await secure.inject({ method: 'GET', url: '/status?format=json' });
    expect(json.statusCode).toBe(200);
    expect(json.json()).toEqual({ status: 'up', reasons: [], quorum: true, leader: 'm1', managersReachable: 3, managers: 3, workersReady: 1, workers: 1 });
    const accept = await secure.inject({ method: 'GET', url: '/status', headers: { accept: 'application/json' } });
    expect(accept.json().status).toBe('up');
    const html = await secure.inject({ method: 'GET', url: '/status', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.body).toContain('Minkube is <span>up</span>');
    const bad = await secure.inject({ method: 'GET', url: '/status?format=xml' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBeTypeOf('string');
  });
});

describe("GET /status's self: a manager's own storage, for a caller it cannot let read GET /v1/cluster", () => {
  let facts: StatusFacts;
  // A secure manager recovering from an empty log: it has applied no token, so it can check none.
  const app = buildManagerApp({
    service: new FakeManagerService(),
    status: { facts: () => facts },
    security: { resolveToken: () => null, authReady: () => false, sessionKey: () => null },
  });
  afterAll(() => app.close());
  const recovering = { id: 'm2', role: 'precandidate' as const, storage: 'recovering' as const, storageTargetIndex: 2000, commitIndex: 0 };

  it('answers its id, role, storage and progress to no token, while GET /v1/cluster stays closed to any', async () => {
    facts = { leaderId: null, votersReachable: 3, voters: 3, votersRecovering: 3, workersReady: 0, workers: 0, self: recovering };
    const res = await app.inject({ method: 'GET', url: '/status?format=json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'down', leader: null, self: recovering });
    // No reason text (it names the data directory) and nothing else of its state.
    expect(Object.keys(res.json().self as object).sort()).toEqual(['commitIndex', 'id', 'role', 'storage', 'storageTargetIndex']);
    const html = await app.inject({ method: 'GET', url: '/status', headers: { accept: 'text/html' } });
    expect(html.body).toContain('<td>This manager</td><td>m2, recovering its storage (0 of 2000)</td>');
    const cluster = await app.inject({ method: 'GET', url: '/v1/cluster', headers: { authorization: `Bearer ${newApiToken().token}` } });
    expect([cluster.statusCode, cluster.json().error.code]).toEqual([503, 'NOT_READY']);
    expect((await app.inject({ method: 'GET', url: '/v1/cluster' })).statusCode).toBe(401);
  });

  it('gives no log position of a manager whose storage is ok, nor of a removed one', async () => {
    facts = { leaderId: 'm1', votersReachable: 3, voters: 3, workersReady: 1, workers: 1, self: { id: 'm2', role: 'follower', storage: 'ok', storageTargetIndex: null, commitIndex: 2400 } };
    expect((await app.inject({ method: 'GET', url: '/status?format=json' })).json().self).toEqual({ id: 'm2', role: 'follower', storage: 'ok', storageTargetIndex: null, commitIndex: null });
    facts = { ...facts, notMember: true };
    expect((await app.inject({ method: 'GET', url: '/status?format=json' })).json()).toMatchObject({ status: 'down', self: { id: 'm2', storage: 'ok', commitIndex: null } });
  });
});

describe('the status verdict', () => {
  const facts = (f: Partial<StatusFacts>): StatusFacts => ({ leaderId: 'm1', votersReachable: 3, voters: 3, workersReady: 2, workers: 2, ...f });
  it('is up when everything answers', () => expect(judgeStatus(facts({}))).toMatchObject({ status: 'up', reasons: [], quorum: true }));
  it('is degraded with a manager unreachable or a worker not ready', () => {
    expect(judgeStatus(facts({ votersReachable: 2 }))).toMatchObject({ status: 'degraded', reasons: ['1 of 3 managers unreachable'] });
    expect(judgeStatus(facts({ workersReady: 1 }))).toMatchObject({ status: 'degraded', reasons: ['1 of 2 workers not ready'] });
    expect(judgeStatus(facts({ workersReady: 0, workers: 0 })).status).toBe('degraded');
  });
  it('does not count a drained worker as not ready, but says when no worker takes new tasks', () => {
    // A drained or paused worker that is ready is no trouble; nor is a drained one an operator then stopped.
    expect(judgeStatus(facts({ workersActive: 1 }))).toMatchObject({ status: 'up', reasons: [] });
    expect(judgeStatus(facts({ workersReady: 1, workersDrainedNotReady: 1, workersActive: 1 }))).toMatchObject({ status: 'up', reasons: [] });
    // A paused worker that went down is a worker not ready (its tasks stayed on it).
    expect(judgeStatus(facts({ workersReady: 1, workersDrainedNotReady: 0, workersActive: 1 }))).toMatchObject({ status: 'degraded', reasons: ['1 of 2 workers not ready'] });
    expect(judgeStatus(facts({ workersActive: 0 }))).toMatchObject({ status: 'degraded', reasons: ['no worker takes new tasks: each is drained, paused or not ready'] });
    expect(judgeStatus(facts({ workersReady: 0, workersDrainedNotReady: 2, workersActive: 0 }))).toMatchObject({ status: 'degraded', reasons: ['no worker takes new tasks: each is drained, paused or not ready'] });
    // Every worker down: said once, as before.
    expect(judgeStatus(facts({ workersReady: 0, workersDrainedNotReady: 0, workersActive: 0 }))).toMatchObject({ reasons: ['2 of 2 workers not ready'] });
  });
  it('counts no recovering manager towards the quorum', () => {
    expect(judgeStatus(facts({ votersRecovering: 1 }))).toMatchObject({ status: 'degraded', quorum: true, reasons: ['1 of 3 managers recovering their storage'] });
    expect(judgeStatus(facts({ votersRecovering: 2 }))).toMatchObject({ status: 'down', quorum: false, reasons: ['no quorum: 3 of 3 managers reachable, 2 of them recovering their storage'] });
  });
  it('is down, speaking for nobody, on a manager that knows it was removed (its own configuration still lists it)', () => {
    expect(judgeStatus(facts({ notMember: true, leaderId: null }))).toEqual({
      status: 'down', reasons: ['this manager is not a member of the cluster (removed): ask another manager'], quorum: false, leader: null,
      managersReachable: 0, managers: 0, workersReady: 0, workers: 0,
    });
  });
  it('is down without a leader or a quorum', () => {
    expect(judgeStatus(facts({ leaderId: null }))).toMatchObject({ status: 'down', reasons: ['no leader'] });
    expect(judgeStatus(facts({ votersReachable: 1, leaderId: null }))).toMatchObject({ status: 'down', quorum: false });
  });
});

describe('metrics.enabled', () => {
  const managers = [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1' }];
  it('defaults to true; false is kept; anything else is CONFIG_INVALID', () => {
    expect(parseClusterConfig({ managers }, '/tmp').metrics.enabled).toBe(true);
    expect(parseClusterConfig({ managers, metrics: { enabled: false } }, '/tmp').metrics.enabled).toBe(false);
    expect(() => parseClusterConfig({ managers, metrics: { enabled: 'no' } }, '/tmp')).toThrow(/metrics/);
    expect(() => parseClusterConfig({ managers, metrics: { scrape: true } }, '/tmp')).toThrow(/metrics/);
  });

  it('off: no /metrics route on either app (404), /status still served', async () => {
    const parts = {} as Parameters<typeof managerObservability>[1];
    const options = managerObservability(null, parts);
    expect(options.metrics).toBeUndefined();
    expect(workerObservability(false)).toEqual({ metrics: null, app: {} });
    const app = buildManagerApp({ service: new FakeManagerService(), ...options });
    try {
      const res = await app.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe('NOT_FOUND');
    } finally {
      await app.close();
    }
  });
});

describe('FastHistogram', () => {
  it("renders exactly what prom-client's histogram renders for the same observations", async () => {
    const [a, b] = [new MetricsRegistry({ processDefaults: false }), new MetricsRegistry({ processDefaults: false })];
    const slow = a.histogram('h_seconds', 'help', [0.01, 0.1, 1], ['route', 'code']);
    const fast = b.fastHistogram('h_seconds', 'help', [0.01, 0.1, 1], ['route', 'code']);
    const values = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 7, 0.01];
    for (const [i, v] of values.entries()) {
      const labels = { route: i % 2 === 0 ? '/v1/kv/*' : '/v1/tasks', code: String(200 + (i % 3)) };
      slow.observe(labels, v);
      fast.observe(`${labels.route} ${labels.code}`, () => labels, v);
    }
    const sorted = (text: string) => text.split('\n').sort();
    expect(sorted(await b.render())).toEqual(sorted(await a.render()));
  });
});

describe('health_check_failures_total', () => {
  it('counts every failed probe of a health check, until it is unhealthy', async () => {
    const clock = new ManualClock(0);
    let failures = 0;
    const verdicts: string[] = [];
    const check = { type: 'exec' as const, command: ['false'], intervalS: 1, timeoutS: 1, retries: 3, startPeriodS: 0 };
    const monitor = new HealthMonitor({ check, ports: [], exec: async () => 1 }, clock, (s) => verdicts.push(s.health), () => failures++);
    monitor.start();
    for (let i = 0; i < 3; i++) await clock.fireNext();
    await waitFor('the unhealthy verdict', () => verdicts.includes('unhealthy'));
    expect(failures).toBe(3);
    monitor.stop();
  });
});
