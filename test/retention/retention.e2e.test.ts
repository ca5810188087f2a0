// Retention with real processes (process runtime): the leader removes the oldest finished task records past
// tasks.retention.finishedMax on every manager, leaves the running one alone, and `task logs` on a removed task is
// 410 TASK_LOGS_GONE (the CLI prints it); a worker forgets a finished task's output workers[].containerRetentionS
// after it ended, and its logs are then 410 too; `minkube gc` answers how many it removed.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { eventually, ProcCluster } from '../support/cluster.js';

let c: ProcCluster;
let leader: string;

beforeAll(async () => {
  c = await ProcCluster.create({
    managers: 3,
    workers: 1,
    workerRuntime: 'process',
    extra: { tasks: { reconcileIntervalMs: 200, retention: { finishedMax: 3, finishedAgeS: 86_400 } } },
  });
  const config = JSON.parse(readFileSync(c.configPath, 'utf8')) as { workers: Record<string, unknown>[] };
  config.workers[0]!.containerRetentionS = 2;
  writeFileSync(c.configPath, JSON.stringify(config, null, 2));
  c.startAll();
  leader = await c.waitForLeader({ timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
});

async function state(id: string): Promise<string | number> {
  const r = await c.http(leader, 'GET', `/v1/tasks/${id}`);
  return r.status === 200 ? (r.body.state as string) : r.status;
}

describe('retention of finished task records (real processes)', () => {
  it('removes the oldest finished records past finishedMax on every manager, never a running one; their logs are 410', async () => {
    const long = await c.http(leader, 'POST', '/v1/tasks', { name: 'long', image: 'local', command: ['sleep', '600'] });
    expect(long.status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await c.http(leader, 'POST', '/v1/tasks', { name: `short-${i}`, image: 'local', command: ['sh', '-c', `echo out-${i}`] });
      expect(r.status).toBe(201);
      ids.push(r.body.id as string);
    }
    // The newest three stay; the oldest five go (some may go before the test sees them end).
    for (const id of ids.slice(5)) await eventually(async () => ((await state(id)) === 'succeeded' ? true : undefined), 60_000, `${id} to succeed`);
    for (const id of ids.slice(0, 5)) await eventually(async () => ((await state(id)) === 404 ? true : undefined), 30_000, `${id} to be removed`);
    await eventually(async () => ((await state(long.body.id as string)) === 'running' ? true : undefined), 30_000, 'the long task to run');
    for (const m of c.managerIds) {
      await eventually(
        async () => {
          const r = await c.http(m, 'GET', '/v1/tasks?limit=100&consistency=stale');
          const listed = (r.body?.items as { id: string }[] | undefined)?.map((t) => t.id);
          return listed !== undefined && listed.length === 4 && !ids.slice(0, 5).some((id) => listed.includes(id)) ? true : undefined;
        },
        30_000,
        `${m} to keep the running task and the newest three finished`,
      );
    }
    const gone = await c.http(leader, 'GET', `/v1/tasks/${ids[0]!}/logs`);
    expect([gone.status, gone.body.error?.code]).toEqual([410, 'TASK_LOGS_GONE']);
    const cli = await runCli(['--api', c.url(leader), 'task', 'logs', ids[0]!]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^error: TASK_LOGS_GONE: /);

    // The worker keeps a finished task's output for containerRetentionS (2 s here), then forgets it: 410, not 404.
    const kept = ids[7]!;
    await eventually(
      async () => {
        const r = await c.http(leader, 'GET', `/v1/tasks/${kept}/logs`);
        return r.status === 410 ? r : undefined;
      },
      30_000,
      `the worker to forget the output of ${kept}`,
    ).then((r) => expect(r.body.error.code).toBe('TASK_LOGS_GONE'));
    expect(await state(kept)).toBe('succeeded');

    const gc = await runCli(['--api', c.url(leader), '--json', 'gc']);
    expect(gc.code).toBe(0);
    expect(JSON.parse(gc.stdout)).toEqual({ removed: 0, tasks: 4 });
    const plain = await runCli(['--api', c.url(leader), 'gc']);
    expect(plain.stdout.trim()).toBe('removed 0 finished task records; 4 kept');
  }, 180_000);
});
