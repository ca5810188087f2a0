// A drain paced by the service's update.parallelism, end to end inside one process: three real managers (Raft, LevelDB,
// HTTP) and three workers over the in-memory runtime, a service of 3 replicas with parallelism 1 and a health check
// that takes a moment to pass. Draining the worker that holds all three never has more than one of them stopped (or
// being stopped) and not yet healthy elsewhere, goes on through a leader change, and ends with the worker holding
// none. A service whose replicas no worker can take does not hold a drain up: it ends all the same.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskRecord, WorkerRecord } from '../../src/contracts/task-model.js';
import { eventually } from '../support/wait.js';
import { TaskCluster } from './tasks-harness.js';

let c: TaskCluster;

beforeAll(async () => {
  c = await TaskCluster.create({ managers: 3, workers: 3, behave: () => ({ durationMs: null }) });
  for (const m of c.config.managers) await c.startManager(m.id);
  // Only w1 at first, so the service's replicas all land there.
  await c.startWorker('w1');
  await eventually(async () => ((await worker('w1'))?.state === 'ready' ? true : undefined), 30_000, 'w1 ready');
}, 60_000);
afterAll(() => c?.close());

async function live(): Promise<string> {
  return [...c.managers.keys()][0]!;
}

async function worker(id: string): Promise<WorkerRecord | undefined> {
  const r = await c.http<WorkerRecord>(await live(), 'GET', `/v1/workers/${id}`).catch(() => null);
  return r?.status === 200 ? r.body : undefined;
}

/** The service's replicas not yet ended, as one manager's state machine holds them at one moment. */
async function replicasOf(m: string, name: string): Promise<TaskRecord[] | undefined> {
  const r = await c.http<{ items: TaskRecord[] }>(m, 'GET', '/v1/tasks?limit=1000&consistency=stale').catch(() => null);
  if (r?.status !== 200) return undefined;
  return r.body.items.filter((t) => t.service?.name === name && t.desiredState === 'run' && !['succeeded', 'failed', 'stopped'].includes(t.state));
}

const healthyOn = (t: TaskRecord, notOn: string): boolean => t.state === 'running' && t.health === 'healthy' && t.workerId !== notOn;

/** Replicas stopped, or being stopped, by a drain of `w` and not yet healthy on another worker. */
const disrupted = (rs: readonly TaskRecord[], w: string): number =>
  rs.filter((t) => t.draining === true || ((t.drainedAttempts ?? 0) > 0 && !healthyOn(t, w))).length;

async function createService(name: string, replicas: number): Promise<void> {
  const r = await c.http(await live(), 'POST', '/v1/services', {
    name, replicas, task: { image: 'img', command: ['forever'] }, update: { parallelism: 1 },
    // A check that passes after 0.3 s: a moved replica is running some time before it is healthy.
    healthCheck: { type: 'exec', command: ['sleep', '0.3'], intervalS: 1, timeoutS: 10, retries: 3, startPeriodS: 0 },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

async function drain(w: string, availability: 'drain' | 'pause' = 'drain'): Promise<void> {
  const r = await c.http(await live(), 'PUT', `/v1/workers/${w}/availability`, { availability });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

describe('a drain paced by update.parallelism', () => {
  it('moves a parallelism-1 service off the drained worker one replica at a time, through a leader change, to the end', async () => {
    await createService('web', 3);
    await eventually(async () => {
      const rs = await replicasOf(await live(), 'web');
      return rs?.length === 3 && rs.every((t) => t.workerId === 'w1' && t.state === 'running' && t.health === 'healthy') ? true : undefined;
    }, 30_000, 'three healthy replicas on w1');
    await c.startWorker('w2');
    await c.startWorker('w3');
    await eventually(async () => ((await worker('w2'))?.state === 'ready' && (await worker('w3'))?.state === 'ready' ? true : undefined), 30_000, 'w2 and w3 ready');

    // Watch one manager's view (one that stays up) all along: never more than one replica out at a time.
    const leader = await c.leader();
    const watched = [...c.managers.keys()].find((id) => id !== leader)!;
    let most = 0;
    let samples = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const rs = await replicasOf(watched, 'web');
        if (rs !== undefined) {
          most = Math.max(most, disrupted(rs, 'w1'));
          samples++;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    await drain('w1');
    // Once the first has moved and is healthy elsewhere, the leader goes away: the next one decides the rest.
    await eventually(async () => {
      const rs = await replicasOf(watched, 'web');
      return rs?.some((t) => (t.drainedAttempts ?? 0) > 0 && healthyOn(t, 'w1')) === true ? true : undefined;
    }, 60_000, 'a first replica moved and healthy elsewhere');
    await c.stopManager(leader);
    const done = await eventually(async () => {
      const rs = await replicasOf(watched, 'web');
      return rs?.length === 3 && rs.every((t) => t.drainedAttempts === 1 && healthyOn(t, 'w1')) ? rs : undefined;
    }, 90_000, 'every replica moved off w1 and healthy');
    watching = false;
    await watcher;
    expect(done.map((t) => t.attempt)).toEqual([2, 2, 2]);
    expect(samples).toBeGreaterThan(10);
    // At most update.parallelism out at once (the old drain marked all three together).
    expect(most).toBe(1);
    await eventually(async () => ((await worker('w1'))?.taskCount === 0 ? true : undefined), 30_000, 'w1 holding no task');
    await c.startManager(leader);
  }, 180_000);

  it('does not wait for replicas no worker can take: the drain ends with them pending', async () => {
    // The three replicas of web are on w2 and w3 now (w1 is drained): drain the one holding more, pause the other.
    const rs = (await replicasOf(await live(), 'web'))!;
    const onW2 = rs.filter((t) => t.workerId === 'w2').length;
    const [drained, paused] = onW2 >= 2 ? ['w2', 'w3'] : ['w3', 'w2'];
    await drain(paused, 'pause');
    await drain(drained);
    await eventually(async () => ((await worker(drained))?.taskCount === 0 ? true : undefined), 60_000, `${drained} holding no task`);
    const after = (await replicasOf(await live(), 'web'))!;
    const moved = after.filter((t) => t.workerId === null);
    expect(moved.length).toBeGreaterThanOrEqual(2);
    expect(moved.every((t) => t.state === 'pending')).toBe(true);
    const view = await c.http<{ waiting: string | null }>(await live(), 'GET', '/v1/services/web');
    expect(view.body.waiting).toMatch(/has no worker to run on \(w1: draining; w2: (draining|paused); w3: (draining|paused); see task why/);
  }, 120_000);
});
