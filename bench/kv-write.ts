// KV write throughput and latency on a 3-manager loopback cluster over HTTP (100-byte values), 1/16/64/256 clients,
// plus linearizable read throughput. With --peer etcd, the same write load also runs against a 3-member etcd
// cluster (its HTTP JSON gateway) in the same run, and the ratios are printed.
// Each level first runs its own load for --warmup seconds, unmeasured: a manager is JavaScript, and V8 compiles the
// code of a load pattern only after seeing it for a few thousand requests, so the measured seconds show the steady
// state (etcd gets the same warm-up). `--warmup 0` shows the cold numbers instead.
// `npx tsx bench/kv-write.ts [--seconds 5] [--warmup 8] [--target leader|follower] [--peer etcd] [--quick]`
import { ProcCluster } from '../test/support/cluster.js';
import { EtcdCluster, etcdAvailable, etcdPutBody } from './etcd.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, flag, percentile, printResult, printTable, round } from './support.js';

export interface LoadResult {
  clients: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** One request of client `c`, its `i`-th. */
export type RequestOf = (c: number, i: number) => { url: URL; method: string; body: string | null };

export async function runLoad(client: BenchClient, clients: number, seconds: number, requestOf: RequestOf, okStatuses = [200]): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const endAt = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < endAt; i++) {
        const { url, method, body } = requestOf(c, i);
        const t0 = performance.now();
        try {
          const r = await client.send(url, method, body);
          if (okStatuses.includes(r.status)) latencies.push(performance.now() - t0);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { clients, opsPerSec: round(latencies.length / seconds, 0), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), errors };
}

const value100 = 'x'.repeat(100);

function minkubeWrites(urls: readonly URL[]): RequestOf {
  const body = JSON.stringify({ value: value100 });
  return (c, i) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}`, urls[(c + i) % urls.length]), method: 'PUT', body });
}

function minkubeReads(urls: readonly URL[]): RequestOf {
  return (c, i) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}?consistency=linearizable`, urls[(c + i) % urls.length]), method: 'GET', body: null });
}

export async function benchKv(opts: { seconds: number; warmupSeconds: number; target: string; levels: number[] }): Promise<{ writes: LoadResult[]; reads: LoadResult[] }> {
  const cluster = await ProcCluster.create({ managers: 3 });
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const ids = opts.target === 'leader' ? [leader] : cluster.managerIds.filter((id) => id !== leader);
    const urls = ids.map((id) => new URL(cluster.url(id)));
    const client = new BenchClient(512);
    const writes: LoadResult[] = [];
    for (const n of opts.levels) writes.push(await warmThenRun(client, n, opts, minkubeWrites(urls)));
    const reads = [await warmThenRun(client, 64, opts, minkubeReads(urls), [200, 404])];
    client.close();
    return { writes, reads };
  } finally {
    await cluster.cleanup();
  }
}

/** One level: its own load for the warm-up seconds (JIT, connections, the Raft pipeline), then the measured seconds. */
async function warmThenRun(
  client: BenchClient,
  clients: number,
  opts: { seconds: number; warmupSeconds: number },
  requestOf: RequestOf,
  okStatuses?: number[],
): Promise<LoadResult> {
  if (opts.warmupSeconds > 0) await runLoad(client, clients, opts.warmupSeconds, requestOf, okStatuses);
  return runLoad(client, clients, opts.seconds, requestOf, okStatuses);
}

export async function benchEtcdWrites(opts: { seconds: number; warmupSeconds: number; levels: number[] }): Promise<LoadResult[]> {
  const etcd = await EtcdCluster.start(3);
  try {
    const url = new URL('/v3/kv/put', (await etcd.leader()).clientUrl);
    const client = new BenchClient(512);
    const requestOf: RequestOf = (c, i) => ({ url, method: 'POST', body: etcdPutBody(`bench-${c}-${i % 64}`, value100) });
    const out: LoadResult[] = [];
    for (const n of opts.levels) out.push(await warmThenRun(client, n, opts, requestOf));
    client.close();
    return out;
  } finally {
    await etcd.stop();
  }
}

/** The headline rows: writes/s, p50 and p99 per client count (with etcd's beside them), then the reads. */
function summaryOf(writes: readonly LoadResult[], reads: readonly LoadResult[], etcd: readonly LoadResult[] | null, seconds: number): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const clients = (n: number): string => `${n} client${n === 1 ? '' : 's'}`;
  writes.forEach((w, i) => {
    const e = etcd?.[i];
    const peer = (n: number | undefined): { peer?: number } => (n === undefined ? {} : { peer: n });
    const note = w.errors + (e?.errors ?? 0) > 0 ? { note: `errors: ${w.errors}${e ? ` / etcd ${e.errors}` : ''}` } : {};
    rows.push({ metric: `KV writes, ${clients(w.clients)}, ${seconds} s`, unit: 'ops/s', value: w.opsPerSec, ...peer(e?.opsPerSec), better: 'higher', ...note });
    rows.push({ metric: `KV write p50, ${clients(w.clients)}`, unit: 'ms', value: w.p50Ms, ...peer(e?.p50Ms), better: 'lower' });
    rows.push({ metric: `KV write p99, ${clients(w.clients)}`, unit: 'ms', value: w.p99Ms, ...peer(e?.p99Ms), better: 'lower' });
  });
  for (const r of reads) {
    const note = r.errors > 0 ? { note: `errors: ${r.errors}` } : {};
    rows.push({ metric: `linearizable reads, ${clients(r.clients)}, ${seconds} s`, unit: 'ops/s', value: r.opsPerSec, better: 'higher', ...note });
    rows.push({ metric: `linearizable read p50, ${clients(r.clients)}`, unit: 'ms', value: r.p50Ms, better: 'lower' });
    rows.push({ metric: `linearizable read p99, ${clients(r.clients)}`, unit: 'ms', value: r.p99Ms, better: 'lower' });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const seconds = Number(arg('seconds', quick ? '1' : '5'));
  const warmupSeconds = Number(arg('warmup', quick ? '1' : '8'));
  const target = arg('target', 'leader');
  const levels = [1, 16, 64, 256];
  const result = await benchKv({ seconds, warmupSeconds, target, levels });
  printTable(`KV writes through the ${target}, ${seconds} s per level after ${warmupSeconds} s of the same load (3 managers, loopback, synced log)`, result.writes.map((r) => ({ ...r })));
  printTable('Linearizable reads (ReadIndex), 64 clients', result.reads.map((r) => ({ ...r })));
  let etcd: LoadResult[] | null = null;
  if (arg('peer', '') === 'etcd') {
    if (!etcdAvailable()) console.log('\n--peer etcd: no etcd binary installed (Debian: apt-get install etcd-server); skipped');
    else {
      etcd = await benchEtcdWrites({ seconds, warmupSeconds, levels });
      printTable('etcd (3 members, loopback, v3 JSON gateway), same load', etcd.map((r) => ({ ...r })));
      printTable(
        'Minkube / etcd',
        levels.map((clients, i) => ({ clients, throughputRatio: round(result.writes[i]!.opsPerSec / etcd![i]!.opsPerSec), p50Ratio: round(result.writes[i]!.p50Ms / etcd![i]!.p50Ms) })),
      );
    }
  }
  printResult('kv', { target, seconds, warmupSeconds, ...result, ...(etcd ? { etcd } : {}) }, summaryOf(result.writes, result.reads, etcd, seconds));
}
