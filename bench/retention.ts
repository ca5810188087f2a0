// Retention (issue 17): N tasks submitted (batches of 1,000) and finished by 2 in-memory workers on 3 managers, with
// tasks.retention at its defaults (finishedMax 10,000) and, for comparison, with retention effectively off. At every
// twentieth of the submissions and at the end: the task records the leader keeps, each manager's RSS and the size of its
// newest snapshot file; then a verdict line: RSS bounded when no manager's grows faster than 10 MiB per
// 100,000 tasks over the second half (least squares). With retention they level off at finishedMax; without, they grow.
// Submissions are paced to at most --backlog unfinished tasks (0: not paced).
// `npx tsx bench/retention.ts [--tasks 200000] [--finished-max 10000] [--backlog 5000] [--mode both|on|off] [--quick]`
import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildWorkerApp } from '../src/api/worker-app.js';
import { parseClusterConfig } from '../src/config/cluster.js';
import { MemoryRuntime } from '../src/runtime/memory.js';
import { WorkerAgent } from '../src/worker/agent.js';
import { WorkerLoops } from '../src/worker/loops.js';
import { HttpManagerLink } from '../src/worker/managers.js';
import { ProcCluster, freePort, httpJson, sleep } from '../test/support/cluster.js';
import { breakdownOf, probeArgs } from './mem-breakdown.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, flag, printResult, printTable, round } from './support.js';

const benchTasks = {
  workerHeartbeatIntervalMs: 250, workerTtlMs: 5000, lostGraceMs: 5000, reconcileIntervalMs: 1000,
  backoffBaseMs: 200, backoffCapMs: 2000, assignTimeoutMs: 10_000, stopTimeoutMs: 2000,
};
const batch = 1000;

/** One worker over the in-memory runtime (every container exits 0 at once), in a child process. */
async function runWorkerChild(configPath: string, id: string, port: number): Promise<void> {
  setMaxListeners(0);
  const config = parseClusterConfig(readFileSync(configPath, 'utf8'), '/');
  const logger = pino({ level: 'error', base: { worker: id } });
  const runtime = new MemoryRuntime({ durationMsDefault: 0, exitCodeDefault: 0 });
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

interface Sample {
  submitted: number;
  /** Task records the leader keeps (any state). */
  records: number;
  /** Per manager, MiB. */
  rssMiB: number[];
  /** Per manager, the newest snapshot file, MiB (0: none yet). */
  snapshotMiB: number[];
  /** Per manager, where its RSS is (bench/mem-breakdown.ts): V8's heap used and committed, buffers outside it. */
  memory: ({ heapUsed: number; heapTotal: number; external: number; mallocHeap: number } | null)[];
}

interface ModeResult {
  mode: 'on' | 'off';
  tasks: number;
  finishedMax: number;
  seconds: number;
  samples: Sample[];
  final: Sample;
  /** Records removed by retention (submitted minus kept at the end). */
  removed: number;
  /** Batches whose answer was lost (a timeout): they may have been created too, and were sent again. */
  unknownBatches: number;
  /** Per manager, RSS's least-squares slope over the samples of the second half, MiB per 100,000 tasks. */
  rssSlope: number[];
}

/** RSS counts as bounded when no manager's grows faster than this over the second half (samples swing +-30 MiB with GCs). */
const rssSlopeMaxMiBPer100k = 10;
/** The verdict is given for runs of at least this many times finishedMax tasks (200,000 for the default 10,000). */
const judgedTasksPerFinishedMax = 20;

/** Per manager, the least-squares slope of RSS over the samples taken in the second half, MiB per 100,000 tasks. */
function rssSlopes(samples: readonly Sample[], tasks: number): number[] {
  const half = samples.filter((s) => s.submitted >= tasks / 2);
  const managers = samples[0]?.rssMiB.length ?? 0;
  return Array.from({ length: managers }, (_, m) => {
    if (half.length < 2) return NaN;
    const xs = half.map((s) => s.submitted / 100_000);
    const ys = half.map((s) => s.rssMiB[m]!);
    const [mx, my] = [xs.reduce((a, b) => a + b) / xs.length, ys.reduce((a, b) => a + b) / ys.length];
    const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
    const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    return round(sxy / sxx, 1);
  });
}

/** One line: records, snapshot and RSS bounded or not, with the numbers that decide it. */
function verdict(r: ModeResult): string {
  const half = r.samples.find((s) => s.submitted >= r.tasks / 2);
  const bounded = r.rssSlope.every((s) => s < rssSlopeMaxMiBPer100k);
  // A short run is still warming up (the first finishedMax records are kept whole): its slope says nothing.
  const judged = r.tasks >= judgedTasksPerFinishedMax * Math.max(1, r.finishedMax);
  const outcome = !judged ? `not judged (under ${judgedTasksPerFinishedMax} x finishedMax tasks)` : `${bounded ? 'BOUNDED' : 'GROWING'} (every slope under ${rssSlopeMaxMiBPer100k}: ${bounded ? 'yes' : 'no'})`;
  return `verdict (retention ${r.mode}, ${r.tasks.toLocaleString('en-US')} tasks): records ${r.final.records}; snapshot ${Math.max(...r.final.snapshotMiB)} MiB; ` +
    `RSS at ${half?.submitted.toLocaleString('en-US') ?? '?'} ${half?.rssMiB.join('/') ?? '?'} MiB, at the end ${r.final.rssMiB.join('/')} MiB, ` +
    `second-half slope ${r.rssSlope.join('/')} MiB per 100,000 tasks: RSS ${outcome}`;
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 1) : NaN;
}

function newestSnapshotMiB(dir: string): number {
  try {
    const files = readdirSync(join(dir, 'snapshots')).filter((n) => n.endsWith('.snap'));
    const sizes = files.map((n) => statSync(join(dir, 'snapshots', n))).sort((a, b) => b.mtimeMs - a.mtimeMs);
    return sizes.length === 0 ? 0 : round(sizes[0]!.size / 1024 / 1024, 2);
  } catch {
    return 0;
  }
}

/** Every record the leader lists, by pages of 1,000 (the count the API answers is a page at a time). */
async function countRecords(url: string): Promise<number> {
  let n = 0;
  let cursor: string | null = null;
  for (;;) {
    const q: string = cursor === null ? '' : `&cursor=${cursor}`;
    const r = await httpJson(url, 'GET', `/v1/tasks?limit=1000&consistency=stale${q}`, undefined, 30_000);
    const body = r.body as { items: unknown[]; nextCursor: string | null };
    n += body.items.length;
    if (body.nextCursor === null) return n;
    cursor = body.nextCursor;
  }
}

/** Unfinished task records (pending, scheduled, running, lost), from the manager's `minkube_tasks` gauge. */
async function unfinishedCount(url: string): Promise<number> {
  const r = await httpJson(url, 'GET', '/metrics', undefined, 10_000);
  let n = 0;
  for (const m of String(r.body).matchAll(/^minkube_tasks\{state="(pending|scheduled|running|lost)"\} (\d+)/gm)) n += Number(m[2]);
  return n;
}

async function activeCount(url: string): Promise<number> {
  let n = 0;
  for (const s of ['pending', 'scheduled', 'running']) {
    const r = await httpJson(url, 'GET', `/v1/tasks?state=${s}&limit=1&consistency=stale`, undefined, 10_000);
    n += (r.body as { items: unknown[] }).items.length;
  }
  return n;
}

async function sample(c: ProcCluster, leaderUrl: string, submitted: number): Promise<Sample> {
  return {
    submitted,
    records: await countRecords(leaderUrl),
    rssMiB: c.managerIds.map((id) => rssMiB(c.node(id).proc?.pid)),
    snapshotMiB: c.managerIds.map((id) => newestSnapshotMiB(join(c.dir, id))),
    memory: await Promise.all(c.managerIds.map(async (id) => {
      const b = await breakdownOf(c.node(id).proc?.pid);
      return b === null ? null : { heapUsed: b.heapUsed, heapTotal: b.heapTotal, external: b.external, mallocHeap: b.mallocHeap };
    })),
  };
}

async function runMode(mode: 'on' | 'off', tasks: number, finishedMax: number, backlog: number): Promise<ModeResult> {
  const retention = mode === 'on' ? { finishedMax, finishedAgeS: 86_400 } : { finishedMax: 200_000, finishedAgeS: 10 * 365 * 86_400 };
  // A snapshot every 2,000 entries, so the newest one follows the state; a long request timeout, so a slow batch under
  // load is answered rather than timed out (a retried batch would be submitted twice: the count would be off).
  const c = await ProcCluster.create({
    managers: 3,
    nodeArgs: probeArgs,
    extra: { tasks: { ...benchTasks, retention }, api: { requestTimeoutMs: 60_000 }, raft: { snapshotThresholdEntries: 2000 } },
  });
  const workers: ChildProcess[] = [];
  try {
    c.startAll();
    const leader = await c.waitForLeader({ timeoutMs: 120_000 });
    const leaderUrl = c.url(leader);
    for (const id of ['w1', 'w2']) {
      const port = await freePort();
      workers.push(spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--worker-child', id, '--config', c.configPath, '--port', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] }));
    }
    const urls = c.managerIds.map((id) => new URL('/v1/tasks/batch', c.url(id)));
    const client = new BenchClient(16);
    const body = JSON.stringify({ tasks: Array.from({ length: batch }, () => ({ image: 'bench', command: ['true'] })) });
    const samples: Sample[] = [];
    let unknown = 0;
    const every = Math.max(batch, Math.floor(tasks / 20 / batch) * batch);
    const t0 = performance.now();
    for (let submitted = 0; submitted < tasks; ) {
      // Paced: at most `backlog` unfinished tasks, so that what grows is the finished records retention removes, not a
      // queue the two workers cannot keep up with (which tasksRetainedMax bounds, and QUEUE_FULL refuses past).
      while (backlog > 0 && (await unfinishedCount(leaderUrl)) > backlog) await sleep(20);
      const r = await client.send(urls[(submitted / batch) % urls.length]!, 'POST', body, 120_000).catch(() => ({ status: 0, body: '' }));
      if (r.status !== 201) {
        if (r.status === 0 || r.status === 504) unknown++;
        await sleep(50); // 429 QUEUE_FULL (the store full of unfinished tasks) or a passing failure: again
        continue;
      }
      submitted += batch;
      if (submitted % every === 0 || submitted >= tasks) {
        samples.push(await sample(c, leaderUrl, submitted));
        console.error(`retention ${mode}: ${JSON.stringify(samples.at(-1))}`); // progress, on stderr
      }
    }
    client.close();
    while ((await activeCount(leaderUrl)) > 0) await sleep(100);
    // Retention catches up with the last batches (a full batch is followed at once by the next).
    if (mode === 'on') while ((await countRecords(leaderUrl)) > finishedMax) await sleep(200);
    const seconds = round((performance.now() - t0) / 1000, 1);
    const final = await sample(c, leaderUrl, tasks);
    return { mode, tasks, finishedMax, seconds, samples, final, removed: tasks - final.records, unknownBatches: unknown, rssSlope: rssSlopes(samples, tasks) };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await c.cleanup();
  }
}

function rows(r: ModeResult): Record<string, string | number>[] {
  return [...r.samples, r.final].map((s, i) => ({
    retention: r.mode,
    at: i === r.samples.length ? 'end' : String(s.submitted),
    records: s.records,
    'rss MiB (m1/m2/m3)': s.rssMiB.join(' / '),
    'snapshot MiB (m1/m2/m3)': s.snapshotMiB.join(' / '),
    'heap used / committed, external, malloc heap MiB': s.memory.map((m) => (m === null ? '?' : `${m.heapUsed}/${m.heapTotal}, ${m.external}, ${m.mallocHeap}`)).join(' | '),
  }));
}

function summaryOf(results: readonly ModeResult[]): SummaryRow[] {
  return results.flatMap((r) => {
    const size = `${r.tasks.toLocaleString('en-US')} tasks finished, retention ${r.mode === 'on' ? `finishedMax ${r.finishedMax.toLocaleString('en-US')}` : 'off'}`;
    return [
      { metric: `task records kept, ${size}`, unit: 'records', value: r.final.records, better: 'lower' as const },
      { metric: `largest manager RSS at the end, ${size}`, unit: 'MiB', value: Math.max(...r.final.rssMiB), better: 'lower' as const },
      { metric: `largest snapshot file at the end, ${size}`, unit: 'MiB', value: Math.max(...r.final.snapshotMiB), better: 'lower' as const },
      { metric: `steepest manager RSS slope over the second half, ${size}`, unit: 'MiB/100k tasks', value: Math.max(...r.rssSlope), better: 'lower' as const },
    ];
  });
}

if (process.argv.includes('--worker-child')) {
  await runWorkerChild(arg('config', ''), arg('worker-child', 'w1'), Number(arg('port', '0')));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const tasks = Number(arg('tasks', quick ? '5000' : '200000'));
  const finishedMax = Number(arg('finished-max', quick ? '1000' : '10000'));
  const backlog = Number(arg('backlog', '5000'));
  const mode = arg('mode', 'both');
  const results: ModeResult[] = [];
  for (const m of ['on', 'off'] as const) {
    if (mode !== 'both' && mode !== m) continue;
    const r = await runMode(m, tasks, finishedMax, backlog);
    results.push(r);
    console.error(`retention ${m}: ${r.final.records} records kept of ${r.tasks} after ${r.seconds} s`);
  }
  printTable(`Retention: ${tasks.toLocaleString('en-US')} tasks submitted and finished (3 managers, 2 in-memory workers)`, results.flatMap(rows));
  for (const r of results) console.log(verdict(r));
  printResult('retention', { results }, summaryOf(results));
}
