// Docker start-up: time to start N busybox `sleep 30` containers through DockerRuntime.run, one at a time and with
// a few in flight, each with its own network namespace and then joining one network sandbox (as a worker's tasks
// do); every container, and the sandbox, is removed afterwards.
// `npx tsx bench/docker-start.ts [--count 50] [--concurrency 8]`
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

interface Subject {
  rt: DockerRuntime;
  /** '' or ', sandbox': the mode's suffix in the table. */
  suffix: string;
}

async function startMany({ rt, suffix }: Subject, count: number, concurrency: number, labels: Record<string, string>): Promise<StartResult> {
  const tag = suffix === '' ? 'own' : 'sbx';
  const latencies: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        const { id } = await rt.run({ name: `minkube-bench-${labels['minkube.bench.run']}-${tag}-${concurrency}-${i}`, image, command: ['sleep', '30'], labels });
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
    mode: (concurrency === 1 ? 'sequential' : `concurrency ${concurrency}`) + suffix,
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
  const sandbox = `minkube-sandbox-bench-${labels['minkube.bench.run']}`;
  const subjects: Subject[] = [
    { rt, suffix: '' },
    { rt: new DockerRuntime({ networkSandbox: sandbox }), suffix: ', sandbox' },
  ];
  const rows: StartResult[] = [];
  try {
    for (const subject of subjects) {
      // One container first, so the image inspect, the sandbox and the daemon's caches are warm for every mode alike.
      const warm = await subject.rt.run({ name: `minkube-bench-${labels['minkube.bench.run']}-warm${subjects.indexOf(subject)}`, image, command: ['true'], labels });
      await removeAll(rt, [warm.id], 1);
    }
    for (const subject of subjects) {
      rows.push(await startMany(subject, count, 1, labels));
      rows.push(await startMany(subject, count, concurrency, labels));
    }
    printTable(`DockerRuntime.run: ${count} x busybox sleep 30 (image ${image}, vfs storage driver; sandbox: tasks join one network namespace)`, rows.map((r) => ({ ...r })));
    const summary = rows.map((r) => ({
      metric: `DockerRuntime.run, ${r.containers} containers, ${r.mode}`,
      unit: 'ms',
      value: r.totalMs,
      better: 'lower' as const,
      note: `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`,
    }));
    printResult('docker-start', { image, rows }, summary);
  } finally {
    // Whatever a failed run left behind, then the sandbox (it carries no bench labels).
    await removeAll(rt, (await rt.list(labels)).map((c) => c.id), concurrency);
    await rt.remove(sandbox);
  }
}

await main();
