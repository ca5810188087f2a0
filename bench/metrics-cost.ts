// The cost of metrics on KV writes: two closed 3-manager clusters side by side, one with metrics on (the default)
// and GET /metrics scraped on every manager every second, as Prometheus would, one with `metrics: { enabled: false }`;
// 64 clients write 100-byte values through the leader, in rounds that alternate between the two (the order flips
// each round), so a machine whose speed drifts shifts both alike. The cost is how many percent fewer writes/s the
// metrics cluster makes (median of the rounds), and how much more leader CPU it spends per write.
// `npx tsx bench/metrics-cost.ts [--seconds 5] [--warmup 5] [--rounds 4] [--clients 64] [--quick]`
import { ManagerMetrics } from '../src/manager/metrics.js';
import { ProcCluster } from '../test/support/cluster.js';
import { runLoad, type LoadResult } from './kv-write.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, cpuMsOf, flag, printResult, printTable, round } from './support.js';

type Side = 'on' | 'off';

interface Target {
  readonly side: Side;
  readonly cluster: ProcCluster;
  readonly client: BenchClient;
  readonly leader: string;
  readonly url: URL;
}

interface Round {
  side: Side;
  opsPerSec: number;
  p99Ms: number;
  errors: number;
  leaderCpuMs: number;
  scrapes: number;
}

const quick = flag('quick');
const seconds = Number(arg('seconds', quick ? '2' : '5'));
const warmupSeconds = Number(arg('warmup', quick ? '1' : '5'));
const rounds = Number(arg('rounds', quick ? '2' : '4'));
const clients = Number(arg('clients', '64'));
const value100 = JSON.stringify({ value: 'x'.repeat(100) });

/** A cluster whose start fails (a port the harness picked was taken meanwhile) is made again, twice at most. */
async function open(side: Side): Promise<Target> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openOnce(side);
    } catch (err) {
      if (attempt === 3) throw err;
      console.error(`metrics ${side}: the cluster did not start (${(err as Error).message.split('\n')[0]}); again`);
    }
  }
}

async function openOnce(side: Side): Promise<Target> {
  const cluster = await ProcCluster.create({ managers: 3, secure: true, ...(side === 'off' ? { extra: { metrics: { enabled: false } } } : {}) });
  try {
    cluster.startAll();
    // Generous: on a loaded machine three managers take a while to start (each loads the sources through tsx).
    const leader = await cluster.waitForLeader({ timeoutMs: 120_000 });
    const client = new BenchClient(512, { ca: cluster.caCertPem(), token: cluster.adminToken() });
    return { side, cluster, client, leader, url: new URL(cluster.url(leader)) };
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
}

/** GET /metrics on every manager once a second until stopped; how many scrapes answered 200. */
function scrapeEverySecond(t: Target): { stop: () => Promise<number> } {
  let stopped = false;
  let ok = 0;
  const urls = t.cluster.managerIds.map((id) => new URL('/metrics', t.cluster.url(id)));
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      const answers = await Promise.all(urls.map((u) => t.client.send(u, 'GET', null).catch(() => null)));
      ok += answers.filter((a) => a?.status === 200).length;
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - started))));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return ok;
    },
  };
}

async function measure(t: Target): Promise<Round> {
  const requestOf = (c: number, i: number) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}`, t.url), method: 'PUT', body: value100 });
  const scraper = t.side === 'on' ? scrapeEverySecond(t) : null;
  try {
    if (warmupSeconds > 0) await runLoad(t.client, clients, warmupSeconds, requestOf);
    const pid = t.cluster.node(t.leader).proc?.pid;
    const cpuBefore = cpuMsOf(pid);
    const r: LoadResult = await runLoad(t.client, clients, seconds, requestOf);
    const leaderCpuMs = round((cpuMsOf(pid) - cpuBefore) / Math.max(1, r.opsPerSec * seconds), 3);
    const scrapes = (await scraper?.stop()) ?? 0;
    return { side: t.side, opsPerSec: r.opsPerSec, p99Ms: r.p99Ms, errors: r.errors, leaderCpuMs, scrapes };
  } finally {
    await scraper?.stop();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The same work in isolation, as CPU time: what the leader does for metrics per write (one request timed by route,
 * one proposal's failure watch; a synced write timed, which a Ready shares among many writes, counted whole here),
 * and one scrape (rendering every metric, process defaults included). Steadier than throughput on a busy machine.
 */
async function hotPath(): Promise<{ perWriteUs: number; scrapeMs: number }> {
  const m = new ManagerMetrics();
  m.attach({
    raft: () => ({ term: 3, commitIndex: 1000, role: 'leader', leaderId: 'm1' }),
    appliedIndex: () => 1000,
    pendingProposals: () => 64,
    countTasksIn: () => 0,
    workers: () => [],
    peerBytesSent: () => new Map([['m2', 1], ['m3', 2]]),
  });
  const n = 200_000;
  const failed = (err: unknown): never => {
    throw err;
  };
  const one = async (i: number): Promise<void> => {
    m.httpRequest('/v1/kv/*', 'PUT', 200, 0.001 + (i % 7) * 0.002);
    m.fsyncTimer()();
    await Promise.resolve(i).catch(failed);
  };
  for (let i = 0; i < n; i++) await one(i); // warm-up: JIT
  const base = process.cpuUsage();
  for (let i = 0; i < n; i++) await one(i);
  const used = process.cpuUsage(base);
  const perWriteUs = round((used.user + used.system) / n, 3);
  for (let i = 0; i < 20; i++) await m.registry.render();
  const t0 = process.cpuUsage();
  for (let i = 0; i < 100; i++) await m.registry.render();
  const r = process.cpuUsage(t0);
  return { perWriteUs, scrapeMs: round((r.user + r.system) / 100 / 1000, 3) };
}

async function main(): Promise<void> {
  const targets: Target[] = [];
  const results: Round[] = [];
  try {
    targets.push(await open('on'), await open('off'));
    for (let i = 0; i < rounds; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) results.push(await measure(t));
    }
  } finally {
    for (const t of targets) {
      t.client.close();
      await t.cluster.cleanup();
    }
  }
  const of = (side: Side) => results.filter((r) => r.side === side);
  const [on, off] = [of('on'), of('off')];
  const opsOn = median(on.map((r) => r.opsPerSec));
  const opsOff = median(off.map((r) => r.opsPerSec));
  const cpuOn = median(on.map((r) => r.leaderCpuMs));
  const cpuOff = median(off.map((r) => r.leaderCpuMs));
  const { perWriteUs, scrapeMs } = await hotPath();
  // The leader's CPU per write with metrics off, in µs, against what metrics add per write and per second of scrapes.
  const hotPathPct = round((perWriteUs / Math.max(1e-9, cpuOff * 1000)) * 100, 2);
  const throughputCostPct = round((1 - opsOn / Math.max(1, opsOff)) * 100, 1);
  const cpuCostPct = round((cpuOn / Math.max(1e-9, cpuOff) - 1) * 100, 1);
  printTable(
    `KV writes, ${clients} clients, through the leader of a closed 3-manager cluster: metrics on (scraped every 1 s) vs off, ${rounds} rounds of ${seconds} s`,
    results.map((r, i) => ({ round: Math.floor(i / 2) + 1, metrics: r.side, 'writes/s': r.opsPerSec, 'p99 ms': r.p99Ms, errors: r.errors, 'leader CPU ms/write': r.leaderCpuMs, scrapes: r.scrapes })),
  );
  printTable('median', [
    { metrics: 'on', 'writes/s': opsOn, 'leader CPU ms/write': round(cpuOn, 3) },
    { metrics: 'off', 'writes/s': opsOff, 'leader CPU ms/write': round(cpuOff, 3) },
    { metrics: 'cost', 'writes/s': `${throughputCostPct}% fewer`, 'leader CPU ms/write': `${cpuCostPct}% more` },
  ]);
  printTable('the metrics work alone (CPU time)', [
    { what: 'per write on the leader (request timed, proposal watched, a synced write timed)', value: `${perWriteUs} µs`, 'of the leader CPU per write (off)': `${hotPathPct}%` },
    { what: 'one scrape of a manager (render every metric)', value: `${scrapeMs} ms`, 'of the leader CPU per write (off)': '-' },
  ]);
  const summary: SummaryRow[] = [
    { metric: `metrics cost on KV writes/s, ${clients} clients (on vs off, median of ${rounds})`, unit: '%', value: throughputCostPct, better: 'lower' },
    { metric: `metrics cost on the leader's CPU per write, ${clients} clients`, unit: '%', value: cpuCostPct, better: 'lower' },
    { metric: "metrics' own work per write, share of the leader's CPU per write", unit: '%', value: hotPathPct, better: 'lower' },
  ];
  printResult('metrics-cost', { clients, seconds, warmupSeconds, rounds, results, opsOn, opsOff, cpuOn, cpuOff, throughputCostPct, cpuCostPct, perWriteUs, scrapeMs, hotPathPct }, summary);
}

await main();
