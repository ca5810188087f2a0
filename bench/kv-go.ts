// Minkube against etcd driven by its native client: one Go load generator (bench/go/src/minkube-loadgen) drives
// etcd 3.4 through clientv3 (gRPC) and Minkube through keep-alive HTTP (PUT /v1/kv/KEY, GET /v1/kv/KEY), so both
// sides face a client of the same cost. Minkube is driven twice per level: over HTTP/2 with a connection per 16
// clients, as etcd's clients share theirs (the ratio is this row's), and over HTTP/1.1 with one per client. 3 members each on loopback, through the leader, 100-byte values, writes at
// 1/16/64/256 clients and linearizable reads at 64, each level after a warm-up; plain and with TLS on both sides
// (etcd: client certificates; Minkube: HTTPS + an admin token), all in one run. Needs `go` and Debian's
// golang-etcd-server-dev (etcd's sources in /usr/share/gocode) and an etcd binary; says what is missing otherwise.
// `npx tsx bench/kv-go.ts [--seconds 5] [--warmup 3] [--levels 1,16,64,256] [--security both|secure|insecure]`
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdAvailable } from './etcd.js';
import { buildLoadgen, etcdSide, loadgen, minkubeSide, type GoResult, type Security, type Side } from './go-loadgen.js';
import type { SummaryRow } from './summary.js';
import { arg, printResult, printTable, round } from './support.js';

interface Row {
  security: Security;
  op: string;
  clients: number;
  etcd: GoResult;
  /** Over HTTP/2 (-h2): a connection per 16 clients. */
  minkube: GoResult;
  /** Over HTTP/1.1: a keep-alive connection per client. */
  minkubeH1: GoResult;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', '5');
  const warmup = arg('warmup', '3');
  const levels = arg('levels', '1,16,64,256').split(',').map(Number);
  const securities: Security[] = arg('security', 'both') === 'both' ? ['insecure', 'secure'] : [arg('security', 'both') as Security];
  const missing = !etcdAvailable() ? 'no etcd binary (apt-get install etcd-server)' : buildLoadgen();
  if (missing !== null) {
    console.log(`kv-go skipped: ${missing}`);
    printResult('kv-go', { skipped: missing }, [{ metric: 'KV writes vs etcd clientv3', unit: 'ops/s', value: null, better: 'higher', note: `skipped: ${missing}` }]);
    return;
  }
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'minkube-kv-go-'));
  try {
    for (const security of securities) {
      // Both clusters run side by side; each level measures etcd, then Minkube, with the same flags.
      const etcd = await etcdSide(security, dir);
      const minkube = await minkubeSide(security).catch(async (err: unknown) => {
        await etcd.cleanup();
        throw err;
      });
      try {
        const run = (side: Side, op: string, clients: number, extra: string[] = []): GoResult =>
          loadgen([...side.args, ...extra, '-op', op, '-clients', String(clients), '-seconds', seconds, '-warmup', warmup]);
        const level = (op: string, clients: number): Row => {
          const e = run(etcd, op, clients);
          return { security, op, clients, etcd: e, minkube: run(minkube, op, clients, ['-h2']), minkubeH1: run(minkube, op, clients) };
        };
        for (const clients of levels) rows.push(level('put', clients));
        rows.push(level('get', 64));
      } finally {
        await minkube.cleanup();
        await etcd.cleanup();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(
    `Minkube vs etcd 3.4 through its native client (one Go load generator; ${seconds} s per level after ${warmup} s warm-up; 3 members, loopback, through the leader)`,
    rows.map((r) => ({
      tls: r.security === 'secure' ? 'on' : 'off',
      op: r.op === 'put' ? 'write' : 'read (linearizable)',
      clients: r.clients,
      'etcd ops/s': round(r.etcd.opsPerSec, 0),
      'Minkube h2 ops/s': round(r.minkube.opsPerSec, 0),
      ratio: round(r.minkube.opsPerSec / r.etcd.opsPerSec, 2),
      'etcd p50/p99/p99.9 ms': `${r.etcd.p50Ms} / ${r.etcd.p99Ms} / ${r.etcd.p999Ms}`,
      'Minkube h2 p50/p99/p99.9 ms': `${r.minkube.p50Ms} / ${r.minkube.p99Ms} / ${r.minkube.p999Ms}`,
      'Minkube HTTP/1.1 ops/s (ratio)': `${round(r.minkubeH1.opsPerSec, 0)} (${round(r.minkubeH1.opsPerSec / r.etcd.opsPerSec, 2)})`,
      'HTTP/1.1 p50/p99/p99.9 ms': `${r.minkubeH1.p50Ms} / ${r.minkubeH1.p99Ms} / ${r.minkubeH1.p999Ms}`,
      errors: `${r.etcd.errors} / ${r.minkube.errors} / ${r.minkubeH1.errors}`,
    })),
  );
  for (const r of rows) {
    for (const side of [r.etcd, r.minkube, r.minkubeH1]) if (side.firstError !== undefined) console.log(`${side.target} ${r.op} ${r.clients} (${r.security}): first error: ${side.firstError}`);
  }
  const summary: SummaryRow[] = rows.flatMap((r) => {
    const label = `${r.op === 'put' ? 'KV writes' : 'KV linearizable reads'}, Go client, ${r.clients} clients${r.security === 'secure' ? ', TLS' : ''}`;
    return [
      { metric: `${label} (HTTP/2)`, unit: 'ops/s', value: round(r.minkube.opsPerSec, 0), peer: round(r.etcd.opsPerSec, 0), better: 'higher' as const },
      { metric: `${label} (HTTP/2), p99`, unit: 'ms', value: r.minkube.p99Ms, peer: r.etcd.p99Ms, better: 'lower' as const },
      { metric: `${label} (HTTP/1.1)`, unit: 'ops/s', value: round(r.minkubeH1.opsPerSec, 0), peer: round(r.etcd.opsPerSec, 0), better: 'higher' as const },
      { metric: `${label} (HTTP/1.1), p99`, unit: 'ms', value: r.minkubeH1.p99Ms, peer: r.etcd.p99Ms, better: 'lower' as const },
    ];
  });
  printResult('kv-go', { rows }, summary);
}

await main();
