// Failover: one client writes every 5 ms through a follower; SIGKILL the leader; the unavailability is the longest
// time without a successful write around the kill. `npx tsx bench/failover.ts [--runs 3]`
import { ProcCluster, sleep } from '../test/support/cluster.js';
import { BenchClient, arg, printTable, round } from './support.js';

export async function benchFailover(runs: number): Promise<number[]> {
  const cluster = await ProcCluster.create({ managers: 3 });
  const client = new BenchClient(4);
  const gaps: number[] = [];
  try {
    cluster.startAll();
    for (let run = 0; run < runs; run++) {
      const leader = await cluster.waitForLeader();
      const via = cluster.managerIds.find((id) => id !== leader)!;
      const url = new URL(`/v1/kv/failover`, cluster.url(via));
      let lastOkMs = performance.now();
      let worstGapMs = 0;
      let stop = false;
      let killedAt = Infinity;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          const t0 = performance.now();
          try {
            const r = await client.send(url, 'PUT', JSON.stringify({ value: `v${i}` }), 3000);
            const now = performance.now();
            if (r.status === 200) {
              if (now > killedAt) worstGapMs = Math.max(worstGapMs, now - Math.max(lastOkMs, 0));
              lastOkMs = now;
            }
          } catch {
            // counted as a gap
          }
          const spent = performance.now() - t0;
          if (spent < 5) await sleep(5 - spent);
        }
      })();
      await sleep(1000);
      killedAt = performance.now();
      await cluster.signal(leader, 'SIGKILL');
      await sleep(4000);
      stop = true;
      await writer;
      gaps.push(round(worstGapMs, 0));
      cluster.start(leader);
      await sleep(1500);
    }
  } finally {
    client.close();
    await cluster.cleanup();
  }
  return gaps;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const gaps = await benchFailover(Number(arg('runs', '3')));
  const sorted = [...gaps].sort((a, b) => a - b);
  printTable('Failover: longest time without a successful write after SIGKILL of the leader (ms)', gaps.map((g, i) => ({ run: i + 1, unavailableMs: g })));
  console.log(JSON.stringify({ bench: 'failover', unavailableMs: gaps, medianMs: sorted[Math.floor(sorted.length / 2)] }));
}
