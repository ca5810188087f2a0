// Manager memory: RSS of each of 3 managers after writing N keys (100-byte values), and the restart time of one
// manager holding them: SIGKILL a follower, start it again, time until GET /ready answers 200 (a leader is known and
// every committed entry is applied). `npx tsx bench/manager-rss.ts [--keys 100000]`
import { readFileSync } from 'node:fs';
import { ProcCluster, eventually, sleep } from '../test/support/cluster.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, printResult, printTable, round } from './support.js';

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 1) : NaN;
}

export interface ManagerRssResult {
  keys: number;
  leader: string;
  rssMiB: Record<string, number>;
  restartMs: number;
  writeSeconds: number;
}

export async function benchManagerRss(keys: number): Promise<ManagerRssResult> {
  const cluster = await ProcCluster.create({ managers: 3 });
  const client = new BenchClient(256);
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const base = cluster.url(leader);
    const value = JSON.stringify({ value: 'v'.repeat(100) });
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < keys) {
          const i = next++;
          const r = await client.send(new URL(`/v1/kv/key-${i}`, base), 'PUT', value, 10_000);
          if (r.status !== 200) next--; // retry this slot later; keys must all exist
        }
      }),
    );
    const writeSeconds = round((performance.now() - t0) / 1000, 1);
    await sleep(1000); // RSS is read a second after the last write, as it was measured before
    const rss: Record<string, number> = {};
    for (const id of cluster.managerIds) rss[id] = rssMiB(cluster.node(id).proc?.pid);
    const follower = cluster.managerIds.find((id) => id !== leader)!;
    await cluster.signal(follower, 'SIGKILL');
    const r0 = performance.now();
    cluster.start(follower);
    await eventually(async () => {
      const r = await cluster.http(follower, 'GET', '/ready', undefined, 1000).catch(() => null);
      return r?.status === 200 ? true : undefined;
    }, 120_000, 'the restarted manager to be ready');
    const restartMs = round(performance.now() - r0, 0);
    return { keys, leader, rssMiB: rss, restartMs, writeSeconds };
  } finally {
    client.close();
    await cluster.cleanup();
  }
}

function summaryOf(r: ManagerRssResult): SummaryRow[] {
  const keys = r.keys.toLocaleString('en-US');
  const followers = Object.entries(r.rssMiB).filter(([id]) => id !== r.leader).map(([, mib]) => mib);
  return [
    { metric: `manager RSS, leader, ${keys} keys`, unit: 'MiB', value: r.rssMiB[r.leader] ?? null, better: 'lower' },
    { metric: `manager RSS, follower (max), ${keys} keys`, unit: 'MiB', value: Math.max(...followers), better: 'lower' },
    { metric: `restart to ready, follower, ${keys} keys`, unit: 'ms', value: r.restartMs, better: 'lower', note: 'SIGKILL, start, GET /ready 200' },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchManagerRss(Number(arg('keys', '100000')));
  printTable(`Managers holding ${r.keys} keys (leader ${r.leader})`, [{ ...r.rssMiB, restartMs: r.restartMs, writeSeconds: r.writeSeconds }]);
  printResult('manager-rss', { ...r }, summaryOf(r));
}
