// Placement end to end with real processes (a manager, two process-runtime workers with labels and capacity in the
// config, scheduler.preemption on): constraints, capacity reservations, `task why`, priority (a high task placed
// before an older normal one), preemption of a low task, and quota refusals, through the HTTP API and the CLI.
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcCluster } from '../support/cluster.js';
import { runCli } from '../support/cli.js';
import { eventually } from '../support/wait.js';

const tuning = {
  tasks: { workerHeartbeatIntervalMs: 200, workerTtlMs: 1500, lostGraceMs: 500, reconcileIntervalMs: 300, backoffBaseMs: 100, backoffCapMs: 500 },
  scheduler: { preemption: true },
};

let c: ProcCluster;

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 1, workers: 2, workerRuntime: 'process', extra: tuning });
  const workers = c.config.workers as Record<string, unknown>[];
  workers[0]!.labels = { zone: 'a', disk: 'ssd' };
  workers[0]!.capacity = { cpus: 2, memoryMb: 1024 };
  workers[1]!.labels = { zone: 'b', disk: 'hdd' };
  workers[1]!.capacity = { cpus: 1, memoryMb: 1024 };
  writeFileSync(c.configPath, JSON.stringify(c.config, null, 2));
  c.startAll();
  await c.waitForLeader({ timeoutMs: 120_000 });
  await c.waitForReadyWorkers(2);
}, 300_000);

afterAll(async () => {
  await c?.cleanup();
}, 60_000);

const sleeper = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ image: 'sleep', command: ['sleep', '300'], ...extra });

async function submit(spec: Record<string, unknown>): Promise<string> {
  const r = await c.http('m1', 'POST', '/v1/tasks', spec);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id as string;
}

async function task(id: string): Promise<{ state: string; workerId: string | null; attempt: number; history: { reason?: string }[] }> {
  return (await c.http('m1', 'GET', `/v1/tasks/${id}`)).body as never;
}

const running = (id: string, on?: string) =>
  eventually(async () => {
    const t = await task(id);
    return t.state === 'running' && (on === undefined || t.workerId === on) ? t : undefined;
  }, 60_000, `task ${id} running${on === undefined ? '' : ` on ${on}`}`);

async function why(id: string): Promise<string[]> {
  const r = await runCli(['task', 'why', id], { MINKUBE_API: c.url('m1') });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n');
}

async function stop(ids: string[]): Promise<void> {
  for (const id of ids) await c.http('m1', 'DELETE', `/v1/tasks/${id}`);
  await eventually(async () => {
    const states = await Promise.all(ids.map(async (id) => (await task(id)).state));
    return states.every((s) => s === 'stopped' || s === 'failed' || s === 'succeeded') ? true : undefined;
  }, 60_000, 'the tasks to stop');
}

describe('placement with real processes', () => {
  it('workers report their labels and capacity', async () => {
    const w = await c.http('m1', 'GET', '/v1/workers/w2');
    expect(w.body).toMatchObject({ labels: { zone: 'b', disk: 'hdd' }, capacity: { cpus: 1, memoryMb: 1024 } });
  });

  it('places by constraints; a task no worker satisfies waits, and task why says why for each worker', async () => {
    const onB = await submit(sleeper({ constraints: ['zone==b'] }));
    const notHdd = await submit(sleeper({ constraints: ['disk!=hdd'] }));
    await running(onB, 'w2');
    await running(notHdd, 'w1');
    const gpu = await submit(sleeper({ constraints: ['gpu', 'zone==a'] }));
    expect(await why(gpu)).toEqual(['w1: label gpu missing', 'w2: label gpu missing']);
    const placed = await runCli(['task', 'why', onB, '--json'], { MINKUBE_API: c.url('m1') });
    expect(JSON.parse(placed.stdout)).toMatchObject({ taskId: onB, state: 'running', workerId: 'w2', lines: ['placed on w2 (running)'] });
    expect((await task(gpu)).state).toBe('pending');
    await stop([onB, notHdd, gpu]);
  }, 120_000);

  it('a bad constraint, priority or namespace is refused at submission naming it', async () => {
    const bad = await c.http('m1', 'POST', '/v1/tasks', sleeper({ constraints: ['zone==a', 'zone=a'] }));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/constraints\[1\]: "zone=a"/);
    expect((await c.http('m1', 'POST', '/v1/tasks', sleeper({ priority: 'urgent' }))).status).toBe(400);
    expect((await c.http('m1', 'POST', '/v1/tasks', sleeper({ namespace: 'Not OK' }))).status).toBe(400);
  });

  it('reserves resources while tasks run; a worker without room is not eligible, and why says so', async () => {
    const big = await submit(sleeper({ constraints: ['zone==a'], resources: { cpus: 2 } }));
    await running(big, 'w1');
    const waiting = await submit(sleeper({ constraints: ['zone==a'], resources: { cpus: 2 } }));
    await eventually(async () => ((await why(waiting)).includes('w1: no room: cpus 2 > 0 free') ? true : undefined), 30_000, 'why to name the missing room');
    expect(await why(waiting)).toEqual(['w1: no room: cpus 2 > 0 free', 'w2: label zone!=a (it is b)']);
    // Priority: a high task submitted after the waiting normal one gets the room first when it frees.
    const high = await submit(sleeper({ constraints: ['zone==a'], resources: { cpus: 2 }, priority: 'high' }));
    await stop([big]);
    await running(high, 'w1');
    expect((await task(waiting)).state).toBe('pending');
    expect(await why(waiting)).toEqual(['w1: no room: cpus 2 > 0 free', 'w2: label zone!=a (it is b)']);
    await stop([high, waiting]);
  }, 120_000);

  it('preemption: a high task with no room stops the low one that makes room, which goes back to pending', async () => {
    const low = await submit(sleeper({ constraints: ['zone==b'], resources: { cpus: 1 }, priority: 'low', maxAttempts: 5 }));
    await running(low, 'w2');
    const high = await submit(sleeper({ constraints: ['zone==b'], resources: { cpus: 1 }, priority: 'high' }));
    await running(high, 'w2');
    const l = await eventually(async () => {
      const t = await task(low);
      return t.attempt > 1 ? t : undefined;
    }, 30_000, 'the low task to be sent back');
    expect(l.history.some((h) => h.reason?.includes(`preempted by high-priority task ${high}`) === true)).toBe(true);
    expect(l.state).toBe('pending');
    expect(await why(low)).toEqual(['w1: label zone!=b (it is a)', 'w2: no room: cpus 1 > 0 free']);
    await stop([high, low]);
  }, 120_000);

  it('quotas: a submission past the namespace quota is 403 QUOTA_EXCEEDED naming the limit; quota set and ls', async () => {
    const set = await runCli(['quota', 'set', 'team-a', '--tasks-max', '1', '--cpus', '4'], { MINKUBE_API: c.url('m1') });
    expect(set.code, set.stderr).toBe(0);
    const first = await submit(sleeper({ namespace: 'team-a', constraints: ['zone==a'] }));
    const refused = await c.http('m1', 'POST', '/v1/tasks', sleeper({ namespace: 'team-a' }));
    expect(refused.status).toBe(403);
    expect(refused.body.error).toEqual({ code: 'QUOTA_EXCEEDED', message: 'namespace team-a: tasksMax 1 would be exceeded (1 live + 1 new)' });
    const viaCli = await runCli(['task', 'run', 'sleep', '--namespace', 'team-a', '--', 'sleep', '1'], { MINKUBE_API: c.url('m1') });
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toBe('error: QUOTA_EXCEEDED: namespace team-a: tasksMax 1 would be exceeded (1 live + 1 new)\n');
    const flags = ['--constraint', 'zone==b', '--constraint', 'disk', '--priority', 'low', '--cpus', '0.5', '--memory-mb', '64', '--namespace', 'team-b'];
    const withFlags = await runCli(['task', 'run', 'sleep', ...flags, '--', 'sleep', '1'], { MINKUBE_API: c.url('m1') });
    expect(withFlags.code, withFlags.stderr).toBe(0);
    const spec = (await c.http('m1', 'GET', `/v1/tasks/${withFlags.stdout.trim()}`)).body.spec as Record<string, unknown>;
    expect(spec).toMatchObject({ constraints: ['zone==b', 'disk'], priority: 'low', resources: { cpus: 0.5, memoryMb: 64 }, namespace: 'team-b' });
    expect((await runCli(['task', 'run', 'sleep', '--priority', 'urgent'], { MINKUBE_API: c.url('m1') })).code).toBe(2);
    const ls = await runCli(['quota', 'ls'], { MINKUBE_API: c.url('m1') });
    expect(ls.stdout).toMatch(/NAMESPACE\s+TASKS\s+CPUS\s+MEMORY_MB\nteam-a\s+1\/1\s+0\/4\s+0\/-/);
    const listed = await c.http('m1', 'GET', '/v1/quotas');
    expect(listed.body).toEqual({ items: [{ namespace: 'team-a', tasksMax: 1, cpus: 4, usage: { tasks: 1, cpus: 0, memoryMb: 0 } }], nextCursor: null });
    await stop([first]);
    expect((await c.http('m1', 'POST', '/v1/tasks', sleeper({ namespace: 'team-a', command: ['true'] }))).status).toBe(201);
  }, 120_000);
});
