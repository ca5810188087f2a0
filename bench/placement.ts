// Tasks accepted and placed per second: 3 managers (processes, synced log) and 2 workers (processes, in-memory
// runtime: each container exits 0 at once), N task submissions from C concurrent clients spread over the managers.
// accepted/s: submissions answered 201; placed/s: until no task is pending; done/s: until every task succeeded.
// Submissions one task per request (POST /v1/tasks) and in batches (POST /v1/tasks/batch).
// `npx tsx bench/placement.ts [--tasks 10000] [--clients 64] [--batch N] [--batch-clients 16] [--scenario steady|backlog]
//  [--quick] [--profile DIR]`
// (The workers run in child processes started from this file with --worker-child: a bench/test knob, not a runtime
// choice of the cluster config.)
import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { buildWorkerApp } from '../src/api/worker-app.js';
import { parseClusterConfig } from '../src/config/cluster.js';
import { MemoryRuntime } from '../src/runtime/memory.js';
import { WorkerAgent } from '../src/worker/agent.js';
import { WorkerLoops } from '../src/worker/loops.js';
import { HttpManagerLink } from '../src/worker/managers.js';
import { ProcCluster, freePort, httpJson, sleep } from '../test/support/cluster.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, flag, percentile, printResult, printTable, round } from './support.js';

const benchTasks = {
  workerHeartbeatIntervalMs: 250, workerTtlMs: 5000, lostGraceMs: 5000, reconcileIntervalMs: 1000,
  backoffBaseMs: 200, backoffCapMs: 2000, assignTimeoutMs: 10_000, stopTimeoutMs: 2000,
};

/** One worker over the in-memory runtime, in this process (the --worker-child mode). */
async function runWorkerChild(configPath: string, id: string, port: number): Promise<void> {
  // The agent waits on every running container with one AbortSignal: thousands of listeners here are expected.
  setMaxListeners(0);
  const config = parseClusterConfig(readFileSync(configPath, 'utf8'), '/');
  const logger = pino({ level: 'warn', base: { worker: id } });
  const runtime = new MemoryRuntime({ durationMsDefault: 0, exitCodeDefault: 0 });
  // Finished tasks leave the map at the next reconciliation: heartbeats stay small at thousands of tasks a second.
  const agent = new WorkerAgent({ workerId: id, runtime, logger, stopTimeoutMs: 1000, tasksMax: 100_000, finishedRetentionMs: 0 });
  const app = buildWorkerApp({ agent, logger: false });
  await app.listen({ host: '127.0.0.1', port });
  const link = new HttpManagerLink({ managers: config.managers.map((m) => m.apiAddress), timeoutMs: 5000 });
  const loops = new WorkerLoops({
    agent, link, logger, registration: { id, apiAddress: `127.0.0.1:${port}`, runtime: 'memory' },
    heartbeatIntervalMs: config.tasks.workerHeartbeatIntervalMs, reconcileIntervalMs: config.tasks.reconcileIntervalMs,
  });
  loops.start();
  process.on('SIGTERM', () => void loops.stop().then(() => process.exit(0)));
}

function startWorkerChild(configPath: string, id: string, port: number): ChildProcess {
  const child = spawn(process.execPath, [...profileArgs(), '--import', 'tsx', import.meta.filename, '--worker-child', id, '--config', configPath, '--port', String(port)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}

interface Result {
  scenario: string;
  tasks: number;
  clients: number;
  /** Tasks per request: 1 is POST /v1/tasks, more is POST /v1/tasks/batch. */
  batch: number;
  acceptedPerSec: number;
  placedPerSec: number;
  donePerSec: number;
  submitP50Ms: number;
  submitP99Ms: number;
  errors: number;
}

/** --profile DIR: every node writes a CPU profile there (the nodes are stopped with SIGTERM so that they do). */
function profileArgs(): string[] {
  const dir = arg('profile', '');
  return dir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

async function countIn(url: string, state: string): Promise<number> {
  const r = await httpJson(url, 'GET', `/v1/tasks?state=${state}&limit=1&consistency=stale`, undefined, 5000);
  return (r.body as { items: unknown[] }).items.length;
}

type Scenario = 'steady' | 'backlog';

/**
 * steady: both workers up, then N submissions; accepted/s over the submissions, placed/s and done/s from the first
 * submission until none is pending, and none is scheduled or running.
 * backlog: N submissions with no worker (accepted/s: the submission path alone), then both workers start; placed/s
 * and done/s from the first worker being ready (placement batches of up to limits.placementBatchMax).
 */
async function benchPlacement(scenario: Scenario, tasks: number, clients: number, batch: number): Promise<Result> {
  const cluster = await ProcCluster.create({ managers: 3, extra: { tasks: benchTasks }, nodeArgs: profileArgs() });
  const workers: ChildProcess[] = [];
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const leaderUrl = cluster.url(leader);
    const startWorkers = async (): Promise<void> => {
      for (const id of ['w1', 'w2']) workers.push(startWorkerChild(cluster.configPath, id, await freePort()));
    };
    if (scenario === 'steady') {
      await startWorkers();
      await readyWorkers(leaderUrl, 2);
    }
    const urls = cluster.managerIds.map((id) => new URL('/v1/tasks', cluster.url(id)));
    const t0 = performance.now();
    const submitted = await submitAll(urls, tasks, clients, batch);
    const acceptedMs = performance.now() - t0;
    let from = t0;
    if (scenario === 'backlog') {
      await startWorkers();
      await readyWorkers(leaderUrl, 1);
      from = performance.now();
    }
    while ((await countIn(leaderUrl, 'pending')) > 0) await sleep(10);
    const placedMs = performance.now() - from;
    while ((await countIn(leaderUrl, 'scheduled')) + (await countIn(leaderUrl, 'running')) > 0) await sleep(20);
    const doneMs = performance.now() - from;
    const perSec = (ms: number): number => round((tasks / ms) * 1000, 0);
    return {
      scenario, tasks, clients, batch, acceptedPerSec: perSec(acceptedMs), placedPerSec: perSec(placedMs), donePerSec: perSec(doneMs),
      submitP50Ms: round(percentile(submitted.latencies, 50)), submitP99Ms: round(percentile(submitted.latencies, 99)), errors: submitted.errors,
    };
  } finally {
    if (profileArgs().length > 0) {
      for (const w of workers) w.kill('SIGTERM');
      for (const id of cluster.managerIds) await cluster.signal(id, 'SIGTERM');
      await sleep(500);
    }
    for (const w of workers) w.kill('SIGKILL');
    await cluster.cleanup();
  }
}

async function readyWorkers(leaderUrl: string, n: number): Promise<void> {
  for (;;) {
    const r = await httpJson(leaderUrl, 'GET', '/v1/workers?consistency=stale');
    if ((r.body as { items: { state: string }[] }).items.filter((w) => w.state === 'ready').length >= n) return;
    await sleep(10);
  }
}

/** N submissions from `clients` concurrent keep-alive clients, round-robin over the managers; failures are retried. */
async function submitAll(urls: readonly URL[], tasks: number, clients: number, batch: number): Promise<{ latencies: number[]; errors: number }> {
  const client = new BenchClient(clients * 2);
  const spec = { image: 'bench', command: ['true'] };
  const body = JSON.stringify(spec);
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (next < tasks) {
        const i = next;
        const n = Math.min(batch, tasks - i);
        next += n;
        const url = batch === 1 ? urls[(c + i) % urls.length]! : new URL('/v1/tasks/batch', urls[(c + i) % urls.length]!);
        const payload = batch === 1 ? body : JSON.stringify({ tasks: Array.from({ length: n }, () => spec) });
        const start = performance.now();
        const r = await client.send(url, 'POST', payload).catch(() => ({ status: 0, body: '' }));
        if (r.status === 201) {
          latencies.push(performance.now() - start);
        } else {
          errors++;
          next -= n; // those again
        }
      }
    }),
  );
  client.close();
  latencies.sort((a, b) => a - b);
  return { latencies, errors };
}

function summaryOf(results: readonly Result[]): SummaryRow[] {
  return results.flatMap((r) => {
    const per = r.batch === 1 ? 'one per request' : `batches of ${r.batch}`;
    const size = `${r.scenario}, ${r.tasks.toLocaleString('en-US')} tasks, ${r.clients} clients, ${per}`;
    const note = r.errors > 0 ? { note: `${r.errors} submissions retried` } : {};
    return [
      { metric: `tasks accepted, ${size}`, unit: 'tasks/s', value: r.acceptedPerSec, better: 'higher', ...note },
      { metric: `tasks placed, ${size}`, unit: 'tasks/s', value: r.placedPerSec, better: 'higher' },
    ];
  });
}

if (process.argv.includes('--worker-child')) {
  await runWorkerChild(arg('config', ''), arg('worker-child', 'w1'), Number(arg('port', '0')));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const tasks = Number(arg('tasks', quick ? '1000' : '10000'));
  const clients = Number(arg('clients', '64'));
  const batchClients = Number(arg('batch-clients', '16'));
  const only = arg('scenario', '');
  // --batch N: only that submission size; by default one task per request (--clients) and batches of 100 (--batch-clients, default 16).
  const batches = arg('batch', '') === '' ? [1, 100] : [Number(arg('batch', '1'))];
  const results: Result[] = [];
  for (const scenario of ['steady', 'backlog'] as const) {
    if (only !== '' && only !== scenario) continue;
    for (const batch of batches) results.push(await benchPlacement(scenario, tasks, batch === 1 ? clients : batchClients, batch));
  }
  printTable(`Tasks accepted and placed (3 managers, 2 in-memory workers, loopback, synced log)`, results.map((r) => ({ ...r })));
  printResult('placement', { results }, summaryOf(results));
}
