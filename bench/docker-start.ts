// Docker start-up: time to start N busybox `sleep 30` containers through DockerRuntime.run, one at a time and with
// a few in flight; every container is removed afterwards. `npx tsx bench/docker-start.ts [--count 50] [--concurrency 8]`
import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../src/runtime/docker.js';
import { arg, percentile, printResult, printTable, round } from './support.js';

const image = process.env.MINKUBE_TEST_IMAGE ?? 'minkube-busybox:latest';

export interface StartResult {
  mode: string;
  containers: number;
  totalMs: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  removeAllMs: number;
}

async function startMany(rt: DockerRuntime, count: number, concurrency: number, labels: Record<string, string>): Promise<StartResult> {
  const latencies: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        const { id } = await rt.run({ name: `minkube-bench-${labels['minkube.bench.run']}-${concurrency}-${i}`, image, command: ['sleep', '30'], labels });
        latencies.push(performance.now() - t);
        ids.push(id);
      }
    }),
  );
  const totalMs = performance.now() - t0;
  const r0 = performance.now();
  await removeAll(rt, ids, concurrency);
  const removeAllMs = performance.now() - r0;
  latencies.sort((a, b) => a - b);
  return {
    mode: concurrency === 1 ? 'sequential' : `concurrency ${concurrency}`,
    containers: count,
    totalMs: round(totalMs, 0),
    perSec: round((count * 1000) / totalMs, 1),
    p50Ms: round(percentile(latencies, 50), 0),
    p99Ms: round(percentile(latencies, 99), 0),
    maxMs: round(latencies.at(-1) ?? NaN, 0),
    removeAllMs: round(removeAllMs, 0),
  };
}

async function removeAll(rt: DockerRuntime, ids: readonly string[], concurrency: number): Promise<void> {
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let id = queue.pop(); id !== undefined; id = queue.pop()) await rt.remove(id);
    }),
  );
}

async function main(): Promise<void> {
  const count = Number(arg('count', '50'));
  const concurrency = Number(arg('concurrency', '8'));
  const rt = new DockerRuntime();
  const unreachable = await rt.ping().then(
    () => null,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  if (unreachable !== null) {
    console.log(`\nskipped: ${unreachable}`);
    printResult('docker-start', { skipped: unreachable }, [{ metric: `DockerRuntime.run, ${count} containers`, unit: 'ms', value: null, better: 'lower', note: 'skipped: docker engine not running' }]);
    return;
  }
  const labels = { 'minkube.bench': 'docker-start', 'minkube.bench.run': randomBytes(4).toString('hex') };
  const rows: StartResult[] = [];
  try {
    // One container first, so the image inspect and the daemon's caches are warm for both modes alike.
    await removeAll(rt, [(await rt.run({ name: `minkube-bench-${labels['minkube.bench.run']}-warm`, image, command: ['true'], labels })).id], 1);
    rows.push(await startMany(rt, count, 1, labels));
    rows.push(await startMany(rt, count, concurrency, labels));
    printTable(`DockerRuntime.run: ${count} x busybox sleep 30 (image ${image}, vfs storage driver)`, rows.map((r) => ({ ...r })));
    const summary = rows.map((r) => ({
      metric: `DockerRuntime.run, ${r.containers} containers, ${r.mode}`,
      unit: 'ms',
      value: r.totalMs,
      better: 'lower' as const,
      note: `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`,
    }));
    printResult('docker-start', { image, rows }, summary);
  } finally {
    // Whatever a failed run left behind.
    await removeAll(rt, (await rt.list(labels)).map((c) => c.id), concurrency);
  }
}

await main();
