// KV write throughput and latency on a 3-manager loopback cluster over HTTP (100-byte values), 1/16/64/256 clients,
// plus linearizable read throughput. `npx tsx bench/kv-write.ts [--seconds 5] [--target leader|follower] [--quick]`
import { ProcCluster } from '../test/support/cluster.js';
import { BenchClient, arg, flag, percentile, printTable, round } from './support.js';

export interface LoadResult {
  clients: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export async function runLoad(client: BenchClient, urls: readonly URL[], clients: number, seconds: number, op: 'put' | 'get'): Promise<LoadResult> {
  const value = JSON.stringify({ value: 'x'.repeat(100) });
  const latencies: number[] = [];
  let errors = 0;
  const endAt = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < endAt; i++) {
        const url = urls[(c + i) % urls.length]!;
        const target = new URL(`/v1/kv/bench-${c}-${i % 64}`, url);
        const t0 = performance.now();
        try {
          const r = op === 'put' ? await client.send(target, 'PUT', value) : await client.send(target, 'GET', null);
          if (r.status === 200 || (op === 'get' && r.status === 404)) latencies.push(performance.now() - t0);
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

export async function benchKv(opts: { seconds: number; target: string; levels: number[] }): Promise<{ writes: LoadResult[]; reads: LoadResult[] }> {
  const cluster = await ProcCluster.create({ managers: 3 });
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const ids = opts.target === 'leader' ? [leader] : cluster.managerIds.filter((id) => id !== leader);
    const urls = ids.map((id) => new URL(cluster.url(id)));
    const client = new BenchClient(512);
    await runLoad(client, urls, 16, 1, 'put'); // warm up: JIT, connections, Raft pipeline
    const writes: LoadResult[] = [];
    for (const n of opts.levels) writes.push(await runLoad(client, urls, n, opts.seconds, 'put'));
    const reads = [await runLoad(client, urls, 64, opts.seconds, 'get')];
    client.close();
    return { writes, reads };
  } finally {
    await cluster.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const seconds = Number(arg('seconds', quick ? '2' : '5'));
  const target = arg('target', 'leader');
  const result = await benchKv({ seconds, target, levels: [1, 16, 64, 256] });
  printTable(`KV writes through the ${target}, ${seconds} s per level (3 managers, loopback, synced log)`, result.writes.map((r) => ({ ...r })));
  printTable('Linearizable reads (ReadIndex), 64 clients', result.reads.map((r) => ({ ...r })));
  console.log(JSON.stringify({ bench: 'kv', target, seconds, ...result }));
}
