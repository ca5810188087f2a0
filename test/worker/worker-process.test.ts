// A real worker (startWorker, process runtime, temp-dir config) against a fake manager on 127.0.0.1: registration,
// heartbeats with stats and statuses, reconciliation starting and stopping tasks, surviving a manager outage, restart.
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fastify, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Assignment, HeartbeatRequest, RegisterRequest, WorkerTaskStatus } from '../../src/contracts/worker.js';
import { startWorker, type RunningWorker } from '../../src/daemon/worker.js';
import { readProcStat } from '../../src/runtime/process.js';
import { freePort, waitFor } from '../support/wait.js';

/** The three manager routes a worker calls, over state the test controls. */
class FakeManager {
  registrations: RegisterRequest[] = [];
  heartbeats: HeartbeatRequest[] = [];
  assignments: Assignment[] = [];
  known = new Set<string>();
  /** Another instance registered the id: heartbeats are refused with WORKER_REPLACED. */
  replaced = false;
  app: FastifyInstance | null = null;
  port = 0;

  async listen(port = 0): Promise<void> {
    const app = fastify();
    app.post<{ Body: RegisterRequest }>('/v1/workers', async (req) => {
      this.registrations.push(req.body);
      this.known.add(req.body.id);
      return { worker: { id: req.body.id, apiAddress: req.body.apiAddress, state: 'ready', runtime: req.body.runtime, registeredAt: new Date().toISOString(), lastHeartbeatAt: null, stats: null, taskCount: 0 } };
    });
    app.post<{ Params: { id: string }; Body: HeartbeatRequest }>('/v1/workers/:id/heartbeat', async (req, reply) => {
      if (!this.known.has(req.params.id)) return reply.code(404).send({ error: { code: 'WORKER_NOT_FOUND', message: 'no such worker' } });
      if (this.replaced) return reply.code(409).send({ error: { code: 'WORKER_REPLACED', message: 'worker w1 is registered by another instance now' } });
      this.heartbeats.push(req.body);
      return { heartbeatIntervalMs: 50 };
    });
    app.get('/v1/workers/:id/assignments', async () => ({ items: this.assignments, nextCursor: null }));
    await app.listen({ host: '127.0.0.1', port });
    this.port = (app.server.address() as { port: number }).port;
    this.app = app;
  }

  async close(): Promise<void> {
    await this.app?.close();
    this.app = null;
  }

  /** The latest status heard of each task (a heartbeat carries only what changed since the last accepted one). */
  lastTasks(): readonly WorkerTaskStatus[] {
    const latest = new Map<string, WorkerTaskStatus>();
    for (const h of this.heartbeats) for (const t of h.tasks) latest.set(t.taskId, t);
    return [...latest.values()];
  }
}

const sleeper = (taskId: string): Assignment => ({
  taskId, attempt: 1, term: 1, desiredState: 'run', spec: { image: 'none', command: ['sleep', '20'] },
});

let dir: string;
let configPath: string;
let workerPort: number;
const fake = new FakeManager();
const lines: Record<string, unknown>[] = [];
const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
let worker: RunningWorker | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minkube-worker-'));
  await fake.listen();
  workerPort = await freePort();
  const deadManager = await freePort();
  configPath = join(dir, 'cluster.json');
  await writeFile(configPath, JSON.stringify({
    insecure: true,
    // The first manager is down: the worker must go on to the next.
    managers: [
      { id: 'm0', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${deadManager}`, dataDir: 'm0' },
      { id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${fake.port}`, dataDir: 'm1' },
    ],
    workers: [{ id: 'w1', apiAddress: `127.0.0.1:${workerPort}`, runtime: 'process', dataDir: 'w1' }],
    tasks: { workerHeartbeatIntervalMs: 50, reconcileIntervalMs: 100, stopTimeoutMs: 1000 },
  }));
});

afterAll(async () => {
  if (process.env.DEBUG_WORKER_LOGS) console.log(lines.map((l) => JSON.stringify(l)).join("\n"));
  if (worker !== null) {
    for (const s of worker.agent.list()) if (s.state === 'running') await worker.agent.stop(s);
    await worker.stop();
  }
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function workerGet(path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${workerPort}${path}`);
  return (await res.json()) as Record<string, unknown>;
}

describe('a worker process against a fake manager', () => {
  it('registers, heartbeats with stats, and runs what reconciliation finds assigned', async () => {
    worker = await startWorker({ configPath, id: 'w1', logger });
    expect(worker.apiUrl).toBe(`http://127.0.0.1:${workerPort}`);
    await waitFor('registered', () => fake.registrations.length > 0);
    // Labels from the config (none here), capacity from the host when the config gives none.
    // And its data directory's instance, which its heartbeats name too (the id is registered to it).
    expect(fake.registrations[0]).toEqual({
      id: 'w1', apiAddress: `127.0.0.1:${workerPort}`, runtime: 'process', labels: {}, capacity: { cpus: expect.any(Number), memoryMb: expect.any(Number) },
      instance: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    expect(fake.registrations[0]!.capacity!.cpus).toBeGreaterThan(0);
    await waitFor('two heartbeats', () => fake.heartbeats.length >= 2);
    expect(fake.heartbeats.at(-1)!.instance).toBe(fake.registrations[0]!.instance);
    const { stats } = fake.heartbeats.at(-1)!;
    expect(stats.memoryTotalBytes).toBeGreaterThan(0);
    expect(stats.diskFreeBytes).toBeGreaterThan(0);
    expect(stats.runningTasks).toBe(0);

    fake.assignments = [sleeper('t1'), sleeper('t2')];
    await waitFor('both tasks running in a heartbeat', () => fake.lastTasks().filter((t) => t.state === 'running').length === 2);
    expect(fake.heartbeats.at(-1)!.stats.runningTasks).toBe(2);
    expect(await workerGet('/v1/tasks/t1')).toMatchObject({ taskId: 't1', state: 'running', attempt: 1, term: 1 });
  });

  it('a second process started with the running worker\'s id fails DATA_DIR_IN_USE before it touches the runtime', async () => {
    const seen: Record<string, unknown>[] = [];
    const second = pino({ level: 'debug' }, { write: (line: string) => seen.push(JSON.parse(line) as Record<string, unknown>) });
    const registrations = fake.registrations.length;
    await expect(startWorker({ configPath, id: 'w1', logger: second })).rejects.toMatchObject({
      code: 'DATA_DIR_IN_USE', message: expect.stringContaining('(worker w1 still running?)'),
    });
    // Nothing of the runtime: no adoption, no sandbox, no registration; the running worker's tasks run on.
    expect(seen.filter((l) => l.component === 'runtime' || l.component === 'agent' || /adopt/.test(String(l.msg)))).toEqual([]);
    expect(fake.registrations.length).toBe(registrations);
    expect(worker!.agent.list().filter((t) => t.state === 'running').map((t) => t.taskId).sort()).toEqual(['t1', 't2']);
  });

  it('keeps its tasks running while the manager is down, registers again when it has forgotten the worker', async () => {
    await fake.close();
    // Several reconcile passes and a failed heartbeat without any manager (counted by the worker, not timed).
    const passes = worker!.loops.reconciliations;
    await waitFor('three reconcile passes and a failed heartbeat without a manager', () =>
      worker!.loops.reconciliations >= passes + 3 && lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('no manager answers')));
    const during = (await workerGet('/v1/tasks')) as { items: WorkerTaskStatus[] };
    expect(during.items.map((t) => [t.taskId, t.state]).sort()).toEqual([['t1', 'running'], ['t2', 'running']]);

    // The manager comes back knowing nothing of the worker, and no longer assigns t2.
    fake.known.clear();
    fake.registrations = [];
    fake.assignments = [sleeper('t1')];
    await fake.listen(fake.port);
    await waitFor('registered again', () => fake.registrations.length > 0);
    await waitFor('t2 stopped', () => fake.lastTasks().find((t) => t.taskId === 't2')?.state === 'stopped');
    expect(fake.lastTasks().find((t) => t.taskId === 't1')?.state).toBe('running');
    expect(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('reconcile: stop: t2'))).toBe(true);
  });

  it('a restarted worker re-adopts the running task; every log line names the worker', async () => {
    const before = worker!.agent.get('t1');
    await worker!.stop();
    worker = null;
    worker = await startWorker({ configPath, id: 'w1', logger });
    expect(worker.agent.get('t1')).toMatchObject({ state: 'running', containerId: before.containerId });
    expect(await workerGet('/v1/tasks/t1')).toMatchObject({ state: 'running', containerId: before.containerId });
    const stopped = await worker.agent.stop(before);
    expect(stopped.state).toBe('stopped');
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.filter((l) => l.worker !== 'w1')).toEqual([]);
  });

  it.runIf(process.platform === 'linux')('a worker restarted on an emptied data directory adopts its running task instead of starting a second copy', async () => {
    fake.assignments = [sleeper('t3')];
    const before = await waitFor('t3 running', () => worker!.agent.list().find((t) => t.taskId === 't3' && t.state === 'running'));
    const record = JSON.parse(await readFile(join(dir, 'w1', 'processes', `${before.containerId}.json`), 'utf8')) as { pid: number };
    await worker!.stop();
    worker = null;
    await rename(join(dir, 'w1'), join(dir, 'w1.old'));
    try {
      worker = await startWorker({ configPath, id: 'w1', logger });
      // A new instance (its id was in the emptied directory): reconcile, not the start, adopts the task's process.
      const passes = worker.loops.reconciliations;
      await waitFor('three reconcile passes', () => worker!.loops.reconciliations >= passes + 3);
      expect(worker.agent.list().filter((t) => t.taskId === 't3')).toEqual([expect.objectContaining({ state: 'running', containerId: before.containerId })]);
      expect((await worker.agent.stop(before)).state).toBe('stopped');
      await waitFor('the one process gone', async () => {
        const stat = await readProcStat(record.pid);
        return stat === null || stat.state === 'Z';
      });
    } finally {
      // Had it not been adopted, nothing else would ever stop it.
      try {
        process.kill(-record.pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
  });

  it('replaced by another instance of its id, it stops its copies of the tasks and stops by itself with WORKER_REPLACED', async () => {
    fake.assignments = [sleeper('t4')];
    await waitFor('t4 running', () => fake.lastTasks().find((t) => t.taskId === 't4')?.state === 'running');
    const beats = fake.heartbeats.length;
    fake.replaced = true;
    const err = await worker!.stopped;
    expect(err).toMatchObject({ code: 'WORKER_REPLACED' });
    expect(worker!.agent.get('t4').state).toBe('stopped');
    expect(lines.some((l) => l.msg === 'this worker was replaced by another instance of its id: its copies of the tasks are stopped; exiting' && l.copiesStopped === 1)).toBe(true);
    // Stopped: its API is closed and nothing more was accepted from it.
    await expect(fetch(`http://127.0.0.1:${workerPort}/health`)).rejects.toThrow();
    expect(fake.heartbeats.length).toBe(beats);
    // Its copy is gone from disk too: a start of this instance again would re-adopt it, ended, and report that
    // attempt failed though the holder runs it.
    expect(readdirSync(join(dir, 'w1', 'processes')).filter((f) => f.endsWith('.json'))).toEqual([]);
    worker = null;
  });
});
