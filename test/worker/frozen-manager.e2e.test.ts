// A worker whose manager freezes (SIGSTOP: its kernel still accepts connections, nothing answers) must not lose its
// liveness, nor its running task: its heartbeat goes to another manager as well after heartbeatHedgeMs, well inside the
// worker TTL (2 s), so the leader never calls it unreachable. Before, a heartbeat waited the request timeout (10.5 s)
// and a follower frozen for 6 s cost the worker its task (a black-box tester's finding).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, ProcCluster, sleep } from '../support/cluster.js';

let c: ProcCluster;

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 1, workerRuntime: 'process' });
  c.startAll();
  await c.waitForLeader({ timeoutMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await c?.cleanup();
});

describe('a frozen manager', () => {
  it('a follower the worker talks to frozen for 6 s: the worker stays ready and its task keeps its first attempt', async () => {
    let leader = await c.waitForLeader();
    // The worker asks the managers in order, m1 first: m1 must be a follower.
    if (leader === 'm1') {
      const moved = await c.http('m1', 'POST', '/v1/cluster/leader', { id: 'm2' }, 15_000);
      expect(moved.status).toBe(200);
      leader = await c.waitForLeader({ excluding: 'm1' });
    }
    await eventually(async () => {
      const r = await c.http(leader, 'GET', '/v1/workers');
      return (r.body.items as { id: string; state: string }[]).some((w) => w.id === 'w1' && w.state === 'ready') ? true : undefined;
    }, 60_000, 'worker w1 ready');
    const submitted = await c.http(leader, 'POST', '/v1/tasks', { image: 'none', command: ['sleep', '60'] });
    expect(submitted.status).toBe(201);
    const id = submitted.body.id as string;
    await eventually(async () => ((await c.http(leader, 'GET', `/v1/tasks/${id}`)).body.state === 'running' ? true : undefined), 30_000, 'the task running');

    await c.signal('m1', 'SIGSTOP');
    const states: string[] = [];
    try {
      const untilMs = Date.now() + 6_000;
      while (Date.now() < untilMs) {
        const w = await c.http(leader, 'GET', '/v1/workers?consistency=stale', undefined, 2_000);
        states.push((w.body.items as { id: string; state: string }[]).find((x) => x.id === 'w1')?.state ?? 'missing');
        await sleep(250);
      }
    } finally {
      await c.signal('m1', 'SIGCONT');
    }
    expect(new Set(states), states.join(' ')).toEqual(new Set(['ready']));
    const t = (await c.http(leader, 'GET', `/v1/tasks/${id}`)).body as { state: string; attempt: number };
    expect(t.state).toBe('running');
    expect(t.attempt).toBe(1);
    expect((await c.http(leader, 'DELETE', `/v1/tasks/${id}`)).status).toBe(200);
  }, 120_000);
});
