// One client, one request at a time: where a single write's time goes. For 1 and 3 managers, the p50/p90 of a PUT
// to the leader and of GET /health (the HTTP floor), so the cost of replication shows as the difference, and the CPU
// each manager spent per request (from /proc: user + system time over the run).
// `npx tsx bench/latency.ts [--ops 1500]`
import { ProcCluster } from '../test/support/cluster.js';
import { BenchClient, arg, cpuMsOf, percentile, printResult, printTable, round } from './support.js';
import type { SummaryRow } from './summary.js';

interface LatencyRow {
  managers: number;
  request: 'PUT /v1/kv' | 'GET /health';
  p50Ms: number;
  p90Ms: number;
  opsPerSec: number;
  /** CPU per request: the leader's, and the busiest follower's (ms). */
  leaderCpuMs: number;
  followerCpuMs: number;
}

async function measure(managers: number, ops: number): Promise<LatencyRow[]> {
  const cluster = await ProcCluster.create({ managers });
  const client = new BenchClient(1);
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const base = new URL(cluster.url(leader));
    const pids = cluster.managerIds.map((id) => ({ id, pid: cluster.nodes.get(id)?.proc?.pid }));
    const body = JSON.stringify({ value: 'x'.repeat(100) });
    const requests = {
      'PUT /v1/kv': (i: number) => client.send(new URL(`/v1/kv/k${i % 16}`, base), 'PUT', body),
      'GET /health': () => client.send(new URL('/health', base), 'GET', null),
    } as const;
    for (let i = 0; i < 300; i++) await requests['PUT /v1/kv'](i); // warm up: JIT, the connection, the Raft pipeline
    const rows: LatencyRow[] = [];
    for (const [request, send] of Object.entries(requests) as [LatencyRow['request'], (i: number) => Promise<unknown>][]) {
      const ms: number[] = [];
      const cpuBefore = pids.map((p) => cpuMsOf(p.pid));
      for (let i = 0; i < ops; i++) {
        const t = performance.now();
        await send(i);
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      const totalMs = ms.reduce((a, b) => a + b, 0);
      const cpuPerOp = pids.map((p, i) => ({ id: p.id, ms: (cpuMsOf(p.pid) - cpuBefore[i]!) / ops }));
      const followers = cpuPerOp.filter((c) => c.id !== leader).map((c) => c.ms);
      rows.push({
        managers, request, p50Ms: round(percentile(ms, 50)), p90Ms: round(percentile(ms, 90)), opsPerSec: Math.round((ops * 1000) / totalMs),
        leaderCpuMs: round(cpuPerOp.find((c) => c.id === leader)!.ms), followerCpuMs: followers.length === 0 ? 0 : round(Math.max(...followers)),
      });
    }
    return rows;
  } finally {
    client.close();
    await cluster.cleanup();
  }
}

function summaryOf(rows: readonly LatencyRow[]): SummaryRow[] {
  return rows.map((r) => ({ metric: `${r.request} p50, 1 client, ${r.managers} manager${r.managers === 1 ? '' : 's'}`, unit: 'ms', value: r.p50Ms, better: 'lower' as const }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ops = Number(arg('ops', '1500'));
  const rows = [...(await measure(1, ops)), ...(await measure(3, ops))];
  printTable(`One client, ${ops} sequential requests each`, rows.map((r) => ({ ...r })));
  printResult('latency', { ops, rows }, summaryOf(rows));
}
