// KV write throughput and latency on a 3-manager loopback cluster over HTTP (100-byte values), 1/16/64/256 clients,
// plus linearizable read throughput. Two clusters of the same build run side by side: one insecure (plain HTTP, no
// token), one closed (HTTPS and the admin token, as a cluster is by default); the levels alternate between them and
// the secure / insecure ratio is the cost of security. With --peer etcd, the same write load also runs against a
// 3-member etcd cluster (its HTTP JSON gateway; with TLS and client certificates beside the closed cluster) in the
// same run, and the ratios are printed.
// Each level first runs its own load for --warmup seconds, unmeasured: a manager is JavaScript, and V8 compiles the
// code of a load pattern only after seeing it for a few thousand requests, so the measured seconds show the steady
// state (etcd gets the same warm-up). `--warmup 0` shows the cold numbers instead.
// `npx tsx bench/kv-write.ts [--seconds 5] [--warmup 8] [--target leader|follower] [--security both|secure|insecure]
// [--peer etcd] [--quick]`
import { ProcCluster } from '../test/support/cluster.js';
import { EtcdCluster, etcdAvailable, etcdPutBody, type EtcdSecurity } from './etcd.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, cpuMsOf, flag, percentile, printResult, printTable, round, type BenchTls } from './support.js';

export interface LoadResult {
  clients: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU (user + system) the leader spent per acknowledged request in the measured seconds, in ms; Minkube only. */
  leaderCpuMs?: number;
  /** The same for the busiest follower. */
  followerCpuMs?: number;
  /** The load generator's own CPU per acknowledged request (ms): it shares the machine's cores with the servers. */
  clientCpuMs: number;
}

/** One request of client `c`, its `i`-th. */
export type RequestOf = (c: number, i: number) => { url: URL; method: string; body: string | null };

export async function runLoad(client: BenchClient, clients: number, seconds: number, requestOf: RequestOf, okStatuses = [200]): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const cpuBefore = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpuBefore);
  const clientCpuMs = round((cpu.user + cpu.system) / 1000 / Math.max(1, latencies.length), 3);
  latencies.sort((a, b) => a - b);
  return { clients, opsPerSec: round(latencies.length / seconds, 0), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), errors, clientCpuMs };
}

const value100 = 'x'.repeat(100);

function minkubeWrites(urls: readonly URL[]): RequestOf {
  const body = JSON.stringify({ value: value100 });
  return (c, i) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}`, urls[(c + i) % urls.length]), method: 'PUT', body });
}

function minkubeReads(urls: readonly URL[]): RequestOf {
  return (c, i) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}?consistency=linearizable`, urls[(c + i) % urls.length]), method: 'GET', body: null });
}

export type Security = 'insecure' | 'secure';

export interface KvResults {
  writes: LoadResult[];
  reads: LoadResult[];
  /** Handshakes the load generator made (secure only): one per connection, most resumed on reconnects. */
  handshakes?: { full: number; resumed: number };
}

/** A started cluster and a load generator pointed at its target managers. */
interface Target {
  readonly security: Security;
  readonly cluster: ProcCluster;
  readonly client: BenchClient;
  readonly urls: readonly URL[];
  readonly leader: string;
}

async function openTarget(security: Security, target: string): Promise<Target> {
  const cluster = await ProcCluster.create({ managers: 3, secure: security === 'secure' });
  try {
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const ids = targetIds(target, leader, cluster.managerIds);
    const urls = ids.map((id) => new URL(cluster.url(id)));
    const client = security === 'secure' ? new BenchClient(512, { ca: cluster.caCertPem(), token: cluster.adminToken() }) : new BenchClient(512);
    return { security, cluster, client, urls, leader };
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
}

function targetIds(target: string, leader: string, managerIds: readonly string[]): string[] {
  return target === 'leader' ? [leader] : managerIds.filter((id) => id !== leader);
}

/**
 * Each level runs on every cluster asked for before the next level starts (the order flips from level to level), so
 * a machine whose speed drifts during the run shifts both sides alike. The clusters not under load sit idle.
 */
export async function benchKv(o: { seconds: number; warmupSeconds: number; target: string; levels: number[]; security: readonly Security[] }): Promise<Partial<Record<Security, KvResults>>> {
  const targets: Target[] = [];
  try {
    for (const s of o.security) targets.push(await openTarget(s, o.target));
    const out: Partial<Record<Security, KvResults>> = {};
    for (const t of targets) out[t.security] = { writes: [], reads: [] };
    const inTurn = (i: number): Target[] => (i % 2 === 0 ? targets : [...targets].reverse());
    for (const [i, n] of o.levels.entries()) {
      for (const t of inTurn(i)) out[t.security]!.writes.push(await withCpu(t, o.seconds, warmThenRun(t.client, n, o, minkubeWrites(t.urls))));
    }
    for (const t of inTurn(o.levels.length)) out[t.security]!.reads.push(await withCpu(t, o.seconds, warmThenRun(t.client, 64, o, minkubeReads(t.urls), [200, 404])));
    for (const t of targets) if (t.security === 'secure') out.secure!.handshakes = { ...t.client.handshakes };
    return out;
  } finally {
    for (const t of targets) {
      t.client.close();
      await t.cluster.cleanup();
    }
  }
}

/**
 * The managers' CPU per acknowledged request over a level's measured seconds: where security's cost lands, and a
 * number that holds still on a machine busy with other work, which throughput does not.
 */
async function withCpu(t: Target, seconds: number, level: (measuring: () => void) => Promise<LoadResult>): Promise<LoadResult> {
  const pids = t.cluster.managerIds.map((id) => ({ id, pid: t.cluster.node(id).proc?.pid }));
  let before: number[] = [];
  const r = await level(() => (before = pids.map((p) => cpuMsOf(p.pid))));
  const ok = Math.max(1, r.opsPerSec * seconds);
  const perOp = pids.map((p, i) => (cpuMsOf(p.pid) - before[i]!) / ok);
  const followers = perOp.filter((_, i) => pids[i]!.id !== t.leader);
  return { ...r, leaderCpuMs: round(perOp[pids.findIndex((p) => p.id === t.leader)]!, 3), followerCpuMs: round(Math.max(...followers), 3) };
}

/** One level: its own load for the warm-up seconds (JIT, connections, the Raft pipeline), then the measured seconds. */
function warmThenRun(
  client: BenchClient,
  clients: number,
  opts: { seconds: number; warmupSeconds: number },
  requestOf: RequestOf,
  okStatuses?: number[],
): (measuring?: () => void) => Promise<LoadResult> {
  return async (measuring) => {
    if (opts.warmupSeconds > 0) await runLoad(client, clients, opts.warmupSeconds, requestOf, okStatuses);
    measuring?.();
    return runLoad(client, clients, opts.seconds, requestOf, okStatuses);
  };
}

export async function benchEtcdWrites(opts: { seconds: number; warmupSeconds: number; levels: number[]; security?: Security }): Promise<LoadResult[]> {
  const etcd = await EtcdCluster.start(3, undefined, opts.security === 'secure');
  try {
    const url = new URL('/v3/kv/put', (await etcd.leader()).clientUrl);
    const client = new BenchClient(512, clientTlsOf(etcd.tls));
    const requestOf: RequestOf = (c, i) => ({ url, method: 'POST', body: etcdPutBody(`bench-${c}-${i % 64}`, value100) });
    const out: LoadResult[] = [];
    for (const n of opts.levels) out.push(await warmThenRun(client, n, opts, requestOf)());
    client.close();
    return out;
  } finally {
    await etcd.stop();
  }
}

/** The load generator's TLS for an etcd cluster with TLS: trust its CA, present the client certificate. */
function clientTlsOf(tls: EtcdSecurity | null): BenchTls | undefined {
  return tls === null ? undefined : { ca: tls.caCertPem, cert: tls.clientCertPem, key: tls.clientKeyPem };
}

/** Per level: the secure cluster's writes/s over the insecure one's, and how much lower that is. */
export interface SecurityCost {
  clients: number;
  insecureOpsPerSec: number;
  secureOpsPerSec: number;
  /** secure / insecure writes/s. */
  ratio: number;
  /** (1 - ratio) * 100: how many percent fewer writes/s with TLS and the token. */
  costPercent: number;
  /** The leader's CPU per write (ms), each side: the cost where it lands, steadier than writes/s on a busy machine. */
  insecureLeaderCpuMs?: number;
  secureLeaderCpuMs?: number;
}

export function securityCost(insecure: readonly LoadResult[], secure: readonly LoadResult[]): SecurityCost[] {
  return insecure.flatMap((w, i) => {
    const s = secure[i];
    if (s === undefined || w.opsPerSec === 0) return [];
    const ratio = s.opsPerSec / w.opsPerSec;
    const cpu = w.leaderCpuMs === undefined || s.leaderCpuMs === undefined ? {} : { insecureLeaderCpuMs: w.leaderCpuMs, secureLeaderCpuMs: s.leaderCpuMs };
    return [{ clients: w.clients, insecureOpsPerSec: w.opsPerSec, secureOpsPerSec: s.opsPerSec, ratio: round(ratio, 3), costPercent: round((1 - ratio) * 100, 1), ...cpu }];
  });
}

const clientsLabel = (n: number): string => `${n} client${n === 1 ? '' : 's'}`;

/**
 * The headline rows of one cluster: writes/s, p50 and p99 per client count (with etcd's beside them), then the
 * reads. `label` names the secure cluster's rows ("TLS + token, "); the insecure rows keep their old names.
 */
function summaryOf(r: KvResults, etcd: readonly LoadResult[] | null, seconds: number, label: string): SummaryRow[] {
  const rows: SummaryRow[] = [];
  r.writes.forEach((w, i) => {
    const e = etcd?.[i];
    const peer = (n: number | undefined): { peer?: number } => (n === undefined ? {} : { peer: n });
    const note = w.errors + (e?.errors ?? 0) > 0 ? { note: `errors: ${w.errors}${e ? ` / etcd ${e.errors}` : ''}` } : {};
    const c = clientsLabel(w.clients);
    rows.push({ metric: `KV writes, ${label}${c}, ${seconds} s`, unit: 'ops/s', value: w.opsPerSec, ...peer(e?.opsPerSec), better: 'higher', ...note });
    rows.push({ metric: `KV write p50, ${label}${c}`, unit: 'ms', value: w.p50Ms, ...peer(e?.p50Ms), better: 'lower' });
    rows.push({ metric: `KV write p99, ${label}${c}`, unit: 'ms', value: w.p99Ms, ...peer(e?.p99Ms), better: 'lower' });
  });
  for (const x of r.reads) {
    const note = x.errors > 0 ? { note: `errors: ${x.errors}` } : {};
    const c = clientsLabel(x.clients);
    rows.push({ metric: `linearizable reads, ${label}${c}, ${seconds} s`, unit: 'ops/s', value: x.opsPerSec, better: 'higher', ...note });
    rows.push({ metric: `linearizable read p50, ${label}${c}`, unit: 'ms', value: x.p50Ms, better: 'lower' });
    rows.push({ metric: `linearizable read p99, ${label}${c}`, unit: 'ms', value: x.p99Ms, better: 'lower' });
  }
  return rows;
}

/** The headline of the comparison: how many percent fewer writes/s at 64 clients with TLS and the token. */
function securityCostRow(costs: readonly SecurityCost[]): SummaryRow[] {
  const at64 = costs.find((c) => c.clients === 64);
  if (at64 === undefined) return [];
  const note = `TLS + token / insecure writes/s: ${at64.ratio.toFixed(2)} (${costs.map((c) => `${c.clients}: ${c.ratio.toFixed(2)}`).join(', ')}); aim: under 15%`;
  return [{ metric: 'security cost at 64 clients (fewer KV writes/s with TLS + token)', unit: '%', value: at64.costPercent, better: 'lower', note }];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const seconds = Number(arg('seconds', quick ? '1' : '5'));
  const warmupSeconds = Number(arg('warmup', quick ? '1' : '8'));
  const target = arg('target', 'leader');
  const securityArg = arg('security', 'both');
  const security: Security[] = securityArg === 'both' ? ['insecure', 'secure'] : securityArg === 'secure' || securityArg === 'insecure' ? [securityArg] : [];
  if (security.length === 0) throw new Error(`--security: both, secure or insecure, not ${securityArg}`);
  const levels = [1, 16, 64, 256];
  const result = await benchKv({ seconds, warmupSeconds, target, levels, security });
  const titles: Record<Security, string> = { insecure: 'insecure (plain HTTP, no token)', secure: 'TLS + token (HTTPS, mutual TLS between managers, the admin token)' };
  for (const s of security) {
    const r = result[s]!;
    printTable(`KV writes through the ${target}, ${titles[s]}, ${seconds} s per level after ${warmupSeconds} s of the same load (3 managers, loopback, synced log)`, r.writes.map((x) => ({ ...x })));
    printTable(`Linearizable reads (ReadIndex), 64 clients, ${titles[s]}`, r.reads.map((x) => ({ ...x })));
  }
  const costs = result.insecure !== undefined && result.secure !== undefined ? securityCost(result.insecure.writes, result.secure.writes) : [];
  if (costs.length > 0) {
    printTable('The cost of security: TLS + token / insecure, same build, same run (levels alternate)', costs.map((c) => ({ ...c })));
    const h = result.secure!.handshakes;
    if (h !== undefined) console.log(`load generator TLS handshakes: ${h.full} full, ${h.resumed} resumed (keep-alive: one per connection)`);
  }
  const etcd: Partial<Record<Security, LoadResult[]>> = {};
  if (arg('peer', '') === 'etcd') {
    if (!etcdAvailable()) console.log('\n--peer etcd: no etcd binary installed (Debian: apt-get install etcd-server); skipped');
    else {
      for (const s of security) {
        const e = (etcd[s] = await benchEtcdWrites({ seconds, warmupSeconds, levels, security: s }));
        const how = s === 'secure' ? 'TLS with client certificates, clients and peers' : 'plain HTTP';
        printTable(`etcd (3 members, loopback, v3 JSON gateway, ${how}), same load`, e.map((r) => ({ ...r })));
        const mine = result[s]!.writes;
        printTable(
          `Minkube / etcd, ${s === 'secure' ? 'both with TLS' : 'both insecure'}`,
          levels.map((clients, i) => ({ clients, throughputRatio: round(mine[i]!.opsPerSec / e[i]!.opsPerSec), p50Ratio: round(mine[i]!.p50Ms / e[i]!.p50Ms) })),
        );
      }
    }
  }
  const summary = [
    ...(result.insecure === undefined ? [] : summaryOf(result.insecure, etcd.insecure ?? null, seconds, '')),
    ...(result.secure === undefined ? [] : summaryOf(result.secure, etcd.secure ?? null, seconds, 'TLS + token, ')),
    ...securityCostRow(costs),
  ];
  // `writes` and `reads` stay the insecure cluster's (as before this comparison), `etcd` the insecure etcd's.
  const data = {
    target, seconds, warmupSeconds, security,
    ...(result.insecure === undefined ? {} : { writes: result.insecure.writes, reads: result.insecure.reads }),
    ...(result.secure === undefined ? {} : { secure: result.secure }),
    ...(costs.length > 0 ? { securityCost: costs } : {}),
    ...(etcd.insecure === undefined ? {} : { etcd: etcd.insecure }),
    ...(etcd.secure === undefined ? {} : { etcdSecure: etcd.secure }),
  };
  printResult('kv', data, summary);
}
