// `minkube worker drain|pause|activate` end to end with real processes: three managers and two process workers
// (bin/minkube.js). A drain moves the worker's tasks (and a service's replica) to the other worker as their next
// attempts, not counted against maxAttempts, and the worker then holds none; nothing new goes there, which a leader
// change and a restart of the drained worker keep; activate makes it eligible again. Bad requests get their codes.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerTaskStatus } from '../../src/contracts/worker.js';
import type { TaskRecord, TaskSpec } from '../../src/contracts/task-model.js';
import { runCli, type CliResult } from '../support/cli.js';
import { ProcCluster, eventually } from '../support/cluster.js';

const tasksConfig = {
  workerHeartbeatIntervalMs: 200, workerTtlMs: 8000, lostGraceMs: 2000, reconcileIntervalMs: 500,
  backoffBaseMs: 300, backoffCapMs: 3000, assignTimeoutMs: 8000, stopTimeoutMs: 2000,
};

interface WorkerView {
  id: string;
  state: string;
  availability: string;
  taskCount: number;
}

describe('worker drain, pause and activate (3 managers, 2 process workers, real processes)', () => {
  const run = randomBytes(6).toString('hex');
  let c: ProcCluster;

  const spec = (scenario: string, extra: Partial<TaskSpec> = {}): TaskSpec => ({
    image: 'minkube-none', command: ['sleep', '600'], labels: { 'minkube.test.run': run, scenario }, ...extra,
  });

  function up(): string[] {
    return c.managerIds.filter((id) => c.node(id).proc !== null);
  }

  async function cli(args: string[]): Promise<CliResult> {
    return runCli(['--api', up().map((id) => c.url(id)).join(','), ...args]);
  }

  async function submit(s: TaskSpec): Promise<string> {
    const r = await c.http(up()[0]!, 'POST', '/v1/tasks', s, 10_000);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.id as string;
  }

  async function task(id: string): Promise<TaskRecord | undefined> {
    for (const m of up()) {
      const r = await c.http(m, 'GET', `/v1/tasks/${id}`, undefined, 3000).catch(() => null);
      if (r?.status === 200) return r.body as TaskRecord;
    }
    return undefined;
  }

  async function until(ids: readonly string[], ok: (t: TaskRecord) => boolean, what: string, timeoutMs = 60_000): Promise<TaskRecord[]> {
    return eventually(async () => {
      const all = await Promise.all(ids.map(task));
      return all.every((t) => t !== undefined && ok(t)) ? (all as TaskRecord[]) : undefined;
    }, timeoutMs, what);
  }

  async function worker(id: string): Promise<WorkerView | undefined> {
    for (const m of up()) {
      const r = await c.http(m, 'GET', `/v1/workers/${id}`, undefined, 3000).catch(() => null);
      if (r?.status === 200) return r.body as WorkerView;
    }
    return undefined;
  }

  /** The tasks of this run a worker's own API says are running there. */
  async function runningOn(w: string): Promise<string[]> {
    const r = await c.http(w, 'GET', '/v1/tasks', undefined, 3000);
    return ((r.body as { items: WorkerTaskStatus[] }).items).filter((s) => s.state === 'running').map((s) => s.taskId);
  }

  beforeAll(async () => {
    c = await ProcCluster.create({ managers: 3, workers: 2, workerRuntime: 'process', extra: { tasks: tasksConfig } });
    c.startAll();
    await c.waitForLeader({ timeoutMs: 150_000 });
    await eventually(async () => ((await worker('w1'))?.state === 'ready' && (await worker('w2'))?.state === 'ready' ? true : undefined), 60_000, 'both workers ready');
  }, 240_000);

  afterAll(async () => {
    await c?.cleanup();
  });

  it('drain moves the running tasks and a replica to the other worker, uncounted, and leaves the worker holding none', async () => {
    // maxAttempts 1: a drained attempt must not use it up.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submit(spec('drain', { maxAttempts: 1 })));
    const created = await c.http(up()[0]!, 'POST', '/v1/services', { name: `drained-${run}`, task: spec('service'), replicas: 2 }, 10_000);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const placed = await until(ids, (t) => t.state === 'running', 'the four tasks running');
    const onW1 = placed.filter((t) => t.workerId === 'w1').map((t) => t.id);
    expect(onW1.length).toBeGreaterThan(0);
    const replicas = async (): Promise<{ taskId: string; state: string; workerId: string | null }[]> =>
      ((await c.http(up()[0]!, 'GET', `/v1/services/drained-${run}`)).body as { tasks: { taskId: string; state: string; workerId: string | null }[] }).tasks;
    await eventually(async () => ((await replicas()).filter((r) => r.state === 'running').length === 2 ? true : undefined), 60_000, 'both replicas running');

    const replicasOnW1 = (await replicas()).filter((r) => r.workerId === 'w1').map((r) => r.taskId);
    const drained = await cli(['worker', 'drain', 'w1']);
    expect(drained, drained.stderr).toMatchObject({ code: 0 });
    expect(drained.stdout).toMatch(/^worker w1 is (draining: its (1 task is|\d+ tasks are) being stopped there and placed elsewhere|drained: it holds no task)/);

    const moved = await until(ids, (t) => t.state === 'running' && t.workerId === 'w2', 'every task running on w2');
    for (const t of moved.filter((x) => onW1.includes(x.id))) {
      expect(t).toMatchObject({ attempt: 2, drainedAttempts: 1 });
      expect(t.history.map((h) => h.reason ?? '')).toContainEqual(expect.stringMatching(/^drained: worker w1 is drained \(stopped there\)/));
    }
    await eventually(async () => {
      const rs = await replicas();
      return rs.length === 2 && rs.every((r) => r.state === 'running' && r.workerId === 'w2') ? true : undefined;
    }, 60_000, "the service's replicas both running on w2");
    // task get of a replica moved by the drain shows the drained attempt too (it showed only the attempt: outside tester).
    for (const id of replicasOnW1) {
      expect((await cli(['task', 'get', id])).stdout).toMatch(/^attempt:\s+2 \(replica of service drained-\S+ version 1: restarted without bound; 1 ended by a drain of its worker\)$/m);
    }
    await eventually(async () => ((await worker('w1'))?.taskCount === 0 ? true : undefined), 30_000, 'w1 holding no task');
    // It did stop them: none of them runs there any more.
    expect(await runningOn('w1')).toEqual([]);
    const listed = await cli(['worker', 'ls']);
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+API\s+RUNTIME\s+TASKS\s+CPU\s+MEM FREE\s+AVAILABILITY\s+LAST HEARTBEAT$/);
    expect(listed.stdout).toMatch(/^w1\s+ready\s+\S+\s+process\s+0\s.*\sdrain\s/m);
    expect(listed.stdout).toMatch(/^w2\s+ready\s.*\sactive\s/m);
    // A drained worker that is ready does not make the cluster degraded (a manager slow to answer another's probe on a
    // loaded machine may, so only the workers' part of the verdict is checked).
    const status = await c.http(up()[0]!, 'GET', '/status?format=json');
    expect(status.body).toMatchObject({ workersReady: 2, workers: 2 });
    expect((status.body.reasons as string[]).filter((r) => r.includes('worker'))).toEqual([]);
  });

  it('places nothing new on the drained worker, says why, and keeps it so through a leader change and its restart', async () => {
    const fresh = [await submit(spec('fresh')), await submit(spec('fresh'))];
    await until(fresh, (t) => t.state === 'running' && t.workerId === 'w2', 'new tasks running on w2');
    const nowhere = await submit(spec('nowhere', { constraints: ['zone==nowhere'] }));
    const why = await c.http(up()[0]!, 'GET', `/v1/tasks/${nowhere}/placement`);
    expect(why.body.workers).toEqual([
      { workerId: 'w1', eligible: false, reason: 'draining' },
      { workerId: 'w2', eligible: false, reason: expect.stringMatching(/^label zone/) as string },
    ]);
    await c.http(up()[0]!, 'DELETE', `/v1/tasks/${nowhere}`);

    const leader = await c.waitForLeader();
    await c.signal(leader, 'SIGKILL');
    const next = await c.waitForLeader({ excluding: leader, timeoutMs: 60_000 });
    expect((await c.http(next, 'GET', '/v1/workers/w1')).body).toMatchObject({ availability: 'drain' });
    // The drained worker restarts: it registers again, and stays drained.
    const registrations = (): number => readFileSync(join(c.dir, 'w1.log'), 'utf8').split('registered with the managers').length - 1;
    const before = registrations();
    await c.signal('w1', 'SIGKILL');
    c.start('w1');
    await eventually(async () => (registrations() > before ? true : undefined), 60_000, 'w1 registered again after its restart');
    const later = [await submit(spec('later')), await submit(spec('later'))];
    await until(later, (t) => t.state === 'running' && t.workerId === 'w2', 'tasks after the leader change running on w2');
    expect((await worker('w1'))).toMatchObject({ availability: 'drain', taskCount: 0 });
    c.start(leader);
    await c.waitForLeader({ timeoutMs: 60_000 });
  });

  it('pause keeps what runs, activate makes the worker eligible again', async () => {
    const activated = await cli(['worker', 'activate', 'w1']);
    expect(activated, activated.stderr).toMatchObject({ code: 0, stdout: 'worker w1 is active: tasks may be placed on it\n' });
    // Round-robin over both workers again: of a few new tasks, some go to w1.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submit(spec('activated')));
    const placed = await until(ids, (t) => t.state === 'running', 'the new tasks running');
    const onW1 = placed.filter((t) => t.workerId === 'w1').map((t) => t.id);
    expect(onW1.length).toBeGreaterThan(0);
    const paused = await cli(['worker', 'pause', 'w1', '--json']);
    expect(paused, paused.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(paused.stdout)).toMatchObject({ id: 'w1', availability: 'pause', taskCount: expect.any(Number) as number });
    const after = [await submit(spec('paused')), await submit(spec('paused'))];
    await until(after, (t) => t.state === 'running' && t.workerId === 'w2', 'tasks submitted while w1 is paused running on w2');
    // Its tasks stay where they run.
    const stayed = await until(onW1, (t) => t.state === 'running', 'the tasks on w1 still running');
    expect(stayed.every((t) => t.workerId === 'w1' && t.attempt === 1)).toBe(true);
  });

  it('refuses a bad body and an unknown worker with their codes, through the API and the CLI', async () => {
    const m = up()[0]!;
    const bad = await c.http(m, 'PUT', '/v1/workers/w1/availability', { availability: 'maintenance' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_BODY');
    expect(bad.body.error.message).toMatch(/^body\.availability: /);
    const none = await c.http(m, 'PUT', '/v1/workers/w1/availability', {});
    expect(none).toMatchObject({ status: 400, body: { error: { code: 'INVALID_BODY' } } });
    const unknown = await c.http(m, 'PUT', '/v1/workers/w9/availability', { availability: 'drain' });
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'WORKER_NOT_FOUND', message: 'no worker w9' } } });
    const viaCli = await cli(['worker', 'drain', 'w9']);
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toMatch(/WORKER_NOT_FOUND: no worker w9/);
  });
});
