// 50 busybox `sleep` tasks through Minkube (3 managers, 2 Docker workers sharing one engine) until all report
// running, and, in the same run for reference, 50 `docker run -d` in a row. Needs a Docker engine and the
// minkube-busybox:latest image (scripts/docker-setup.sh); without them it prints a "skipped" row and exits 0.
// `npx tsx bench/containers.ts [--count 50]`
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ProcCluster, eventually, sleep } from '../test/support/cluster.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, printResult, printTable, round } from './support.js';

const image = 'minkube-busybox:latest';

function docker(args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Removes the containers whose `label` has one of `values`: only this run's, the engine may be shared. */
function removeLabelled(label: string, values: readonly string[]): void {
  const mine = new Set(values);
  const ids = docker(['ps', '-a', '--filter', `label=${label}`, '--format', `{{.ID}} {{.Label "${label}"}}`])
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([id, value]) => id !== undefined && id !== '' && value !== undefined && mine.has(value))
    .map(([id]) => id!);
  if (ids.length > 0) docker(['rm', '-f', ...ids]);
}

async function minkubeRun(count: number): Promise<{ seconds: number; perWorker: Record<string, number> }> {
  const cluster = await ProcCluster.create({ managers: 3, workers: 2, workerRuntime: 'docker' });
  const client = new BenchClient(64);
  const ids: string[] = [];
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    await eventually(async () => {
      const r = await cluster.http(leader, 'GET', '/v1/workers');
      const workers = (r.body.items ?? []) as { state: string }[];
      return workers.filter((w) => w.state === 'ready').length === 2 ? true : undefined;
    }, 60_000, 'both workers to be ready');
    const base = cluster.url(leader);
    const spec = JSON.stringify({ image, command: ['sleep', '300'] });
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: count }, async () => {
        ids.push(JSON.parse((await client.send(new URL('/v1/tasks', base), 'POST', spec)).body).id as string);
      }),
    );
    const perWorker: Record<string, number> = {};
    const deadline = t0 + 60_000 + count * 5000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`not all ${count} tasks running after ${round((deadline - t0) / 1000, 0)} s`);
      const r = await cluster.http(leader, 'GET', `/v1/tasks?state=running&limit=1000`);
      const running = (r.body.items as { id: string; workerId: string }[]).filter((t) => ids.includes(t.id));
      if (running.length === count) {
        for (const t of running) perWorker[t.workerId] = (perWorker[t.workerId] ?? 0) + 1;
        break;
      }
      await sleep(20);
    }
    return { seconds: round((performance.now() - t0) / 1000), perWorker };
  } finally {
    client.close();
    await cluster.cleanup();
    removeLabelled('minkube.task', ids);
    // The workers' network sandboxes go too, so that every run pays for making them, as a new worker does.
    spawnSync('docker', ['rm', '-f', 'minkube-sandbox-w1', 'minkube-sandbox-w2'], { stdio: 'ignore' });
  }
}

function dockerRunInARow(count: number): number {
  const t0 = performance.now();
  const run = randomBytes(4).toString('hex');
  try {
    for (let i = 0; i < count; i++) docker(['run', '-d', '--network', 'none', '--label', `minkube.bench=${run}`, image, 'sleep', '300']);
    return round((performance.now() - t0) / 1000);
  } finally {
    removeLabelled('minkube.bench', [run]);
  }
}

/** Why this machine cannot run the benchmark, or null when it can. */
function dockerMissing(): string | null {
  const run = (args: string[]): ReturnType<typeof spawnSync> => spawnSync('docker', args, { stdio: 'ignore', timeout: 15_000 });
  const info = run(['info']);
  if (info.error !== undefined && (info.error as NodeJS.ErrnoException).code === 'ENOENT') return 'docker not installed';
  if (info.status !== 0) return 'docker engine not running';
  if (run(['image', 'inspect', image]).status !== 0) return `no ${image} image (bash scripts/docker-setup.sh)`;
  return null;
}

function summaryOf(count: number, minkubeSeconds: number | null, inARowSeconds: number | null, note?: string): SummaryRow[] {
  return [
    { metric: `${count} containers, submitted -> all running`, unit: 's', value: minkubeSeconds, better: 'lower', ...(note === undefined ? {} : { note }) },
    { metric: `${count} x docker run -d in a row (reference)`, unit: 's', value: inARowSeconds, better: 'lower', ...(note === undefined ? {} : { note }) },
  ];
}

async function main(): Promise<void> {
  const count = Number(arg('count', '50'));
  const missing = dockerMissing();
  if (missing !== null) {
    console.log(`\nskipped: ${missing}`);
    printResult('containers', { count, skipped: missing }, summaryOf(count, null, null, `skipped: ${missing}`));
    return;
  }
  const minkube = await minkubeRun(count);
  const inARow = dockerRunInARow(count);
  printTable(`${count} busybox sleep tasks until all report running (2 workers, one Docker engine)`, [
    { what: 'minkube task run (3 managers, 2 workers)', seconds: minkube.seconds, perWorker: JSON.stringify(minkube.perWorker) },
    { what: `docker run -d, ${count} in a row`, seconds: inARow, perWorker: '-' },
  ]);
  printResult(
    'containers',
    { count, minkubeSeconds: minkube.seconds, perWorker: minkube.perWorker, dockerRunInARowSeconds: inARow, ratio: round(minkube.seconds / inARow) },
    summaryOf(count, minkube.seconds, inARow),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
