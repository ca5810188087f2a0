// The cost of tracing on KV writes: three closed 3-manager clusters side by side, 64 clients writing 100-byte values
// through the leader, in rounds that rotate the order: `off` (no traceparent, no exporter: what every cluster pays
// for tracing being there), `header` (every request carries a traceparent, no exporter: contexts passed on through
// the proposal and every manager's apply) and `export` (a traceparent on every request, OTEL_EXPORTER_OTLP_ENDPOINT
// set, spans exported to an OTLP/HTTP receiver in this process). The cost is how many percent fewer writes/s a side
// makes than `off` (median of the rounds), and the leader's CPU per write. Then the work alone, as CPU time: the
// envelope's encoding and decoding with and without a trace context.
// `npx tsx bench/tracing-cost.ts [--seconds 5] [--warmup 5] [--rounds 3] [--clients 64] [--quick]`
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeCommand, encodeCommand, type CommandEnvelope } from '../src/kv/commands.js';
import { ProcCluster } from '../test/support/cluster.js';
import { runLoad, type LoadResult } from './kv-write.js';
import type { SummaryRow } from './summary.js';
import { BenchClient, arg, cpuMsOf, flag, printResult, printTable, round } from './support.js';

type Side = 'off' | 'header' | 'export';

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
}

const quick = flag('quick');
const seconds = Number(arg('seconds', quick ? '2' : '5'));
const warmupSeconds = Number(arg('warmup', quick ? '1' : '5'));
const rounds = Number(arg('rounds', quick ? '2' : '3'));
const clients = Number(arg('clients', '64'));
const value100 = JSON.stringify({ value: 'x'.repeat(100) });
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** A receiver that accepts every export; counts the requests. */
async function receiver(): Promise<{ url: string; exports: () => number; close: () => void }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exports: () => n, close: () => server.close() };
}

async function open(side: Side, endpoint: string): Promise<Target> {
  for (let attempt = 1; ; attempt++) {
    const cluster = await ProcCluster.create({ managers: 3, secure: true });
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    try {
      // The nodes inherit this process's environment when they start.
      if (side === 'export') process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
      else delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      cluster.startAll();
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      const leader = await cluster.waitForLeader();
      const client = new BenchClient(512, { ca: cluster.caCertPem(), token: cluster.adminToken() }, side === 'off' ? {} : { traceparent });
      return { side, cluster, client, leader, url: new URL(cluster.url(leader)) };
    } catch (err) {
      await cluster.cleanup();
      if (attempt === 3) throw err;
      console.error(`tracing ${side}: the cluster did not start (${(err as Error).message.split('\n')[0]}); again`);
    }
  }
}

async function measure(t: Target): Promise<Round> {
  const requestOf = (c: number, i: number) => ({ url: new URL(`/v1/kv/bench-${c}-${i % 64}`, t.url), method: 'PUT', body: value100 });
  if (warmupSeconds > 0) await runLoad(t.client, clients, warmupSeconds, requestOf);
  const pid = t.cluster.node(t.leader).proc?.pid;
  const cpuBefore = cpuMsOf(pid);
  const r: LoadResult = await runLoad(t.client, clients, seconds, requestOf);
  const leaderCpuMs = round((cpuMsOf(pid) - cpuBefore) / Math.max(1, r.opsPerSec * seconds), 3);
  return { side: t.side, opsPerSec: r.opsPerSec, p99Ms: r.p99Ms, errors: r.errors, leaderCpuMs };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** CPU µs per call of f, after a warm-up. */
function cpuUsPer(n: number, f: (i: number) => unknown): number {
  for (let i = 0; i < n; i++) f(i);
  const base = process.cpuUsage();
  for (let i = 0; i < n; i++) f(i);
  const used = process.cpuUsage(base);
  return round((used.user + used.system) / n, 3);
}

function envelopeWork(): { encodeUs: number; encodeTracedUs: number; decodeUs: number; decodeTracedUs: number } {
  const plain: CommandEnvelope = { clientId: 'm1.0123456789ab', seq: 1, ackSeq: 1, reqId: '4f1c3a52-7d2e-4a8b-9c41-2f5e6d7a8b9c', cmd: { op: 'put', key: 'bench-1-1', value: 'x'.repeat(100) } };
  const traced: CommandEnvelope = { ...plain, tp: traceparent };
  const [plainBytes, tracedBytes] = [encodeCommand(plain), encodeCommand(traced)];
  const n = 200_000;
  return {
    encodeUs: cpuUsPer(n, (i) => encodeCommand({ ...plain, seq: i + 1 })),
    encodeTracedUs: cpuUsPer(n, (i) => encodeCommand({ ...traced, seq: i + 1 })),
    decodeUs: cpuUsPer(n, () => decodeCommand(plainBytes)),
    decodeTracedUs: cpuUsPer(n, () => decodeCommand(tracedBytes)),
  };
}

async function main(): Promise<void> {
  const sink = await receiver();
  const targets: Target[] = [];
  const results: Round[] = [];
  try {
    for (const side of ['off', 'header', 'export'] as const) targets.push(await open(side, sink.url));
    for (let i = 0; i < rounds; i++) {
      const order = [...targets.slice(i % targets.length), ...targets.slice(0, i % targets.length)];
      for (const t of order) results.push(await measure(t));
    }
  } finally {
    for (const t of targets) {
      t.client.close();
      await t.cluster.cleanup();
    }
    sink.close();
  }
  const of = (side: Side) => results.filter((r) => r.side === side);
  const ops = (side: Side) => median(of(side).map((r) => r.opsPerSec));
  const cpu = (side: Side) => median(of(side).map((r) => r.leaderCpuMs));
  const costPct = (side: Side) => round((1 - ops(side) / Math.max(1, ops('off'))) * 100, 1);
  const cpuPct = (side: Side) => round((cpu(side) / Math.max(1e-9, cpu('off')) - 1) * 100, 1);
  printTable(
    `KV writes, ${clients} clients, through the leader of a closed 3-manager cluster: tracing off, a traceparent on every request, and exported too; ${rounds} rounds of ${seconds} s`,
    results.map((r, i) => ({ round: Math.floor(i / 3) + 1, tracing: r.side, 'writes/s': r.opsPerSec, 'p99 ms': r.p99Ms, errors: r.errors, 'leader CPU ms/write': r.leaderCpuMs })),
  );
  printTable('median', (['off', 'header', 'export'] as const).map((side) => ({
    tracing: side,
    'writes/s': ops(side),
    'leader CPU ms/write': round(cpu(side), 3),
    'writes/s vs off': side === 'off' ? '-' : `${costPct(side)}% fewer`,
    'CPU/write vs off': side === 'off' ? '-' : `${cpuPct(side)}% more`,
  })));
  const work = envelopeWork();
  printTable('the envelope alone (CPU time per entry)', [
    { what: 'encode', untraced: `${work.encodeUs} µs`, 'with a trace context': `${work.encodeTracedUs} µs` },
    { what: 'decode (every manager, at propose and apply)', untraced: `${work.decodeUs} µs`, 'with a trace context': `${work.decodeTracedUs} µs` },
  ]);
  console.log(`OTLP export requests received: ${sink.exports()}`);
  const summary: SummaryRow[] = [
    { metric: `tracing cost on KV writes/s, ${clients} clients, traceparent on every request (vs none, median of ${rounds})`, unit: '%', value: costPct('header'), better: 'lower' },
    { metric: `tracing cost on KV writes/s, ${clients} clients, every request traced and exported (vs none)`, unit: '%', value: costPct('export'), better: 'lower' },
  ];
  printResult('tracing-cost', { clients, seconds, warmupSeconds, rounds, results, exports: sink.exports(), ...work, costHeaderPct: costPct('header'), costExportPct: costPct('export'), cpuHeaderPct: cpuPct('header'), cpuExportPct: cpuPct('export') }, summary);
}

await main();
