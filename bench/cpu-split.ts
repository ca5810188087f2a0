// Where the CPU goes per write, etcd against Minkube, both driven by the Go load generator (bench/go-loadgen.ts):
// while it writes at each level, a system-wide `perf record` samples every CPU, and each sample is put down to the
// three servers' threads (user or kernel), the load generator's (user or kernel), idle, or anything else. Per write
// is CPU time over writes: on a machine the load saturates, the servers' CPU per write is what sets writes/s, so the
// ratio of the two sides' server columns says how far a change moves the throughput ratio. Needs perf
// (apt-get install linux-perf), go, Debian's golang-etcd-server-dev and etcd; says what is missing otherwise.
// `--parts`: Minkube's managers run with --perf-basic-prof, and the leader's samples are also split by what runs:
// garbage collection, the kernel, JIT-compiled JavaScript, V8's builtins, libc, and the rest of node's C++.
// `npx tsx bench/cpu-split.ts [--levels 1,16,64,256] [--security insecure|secure] [--seconds 3] [--h2] [--parts]`
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdAvailable } from './etcd.js';
import { buildLoadgen, etcdSide, loadgen, loadgenBinary, minkubeSide, type GoResult, type Security, type Side } from './go-loadgen.js';
import { arg, flag, printResult, printTable, round } from './support.js';

/** CPU per write in µs, by who spent it. */
interface Split {
  serverUser: number;
  serverKernel: number;
  clientUser: number;
  clientKernel: number;
  idle: number;
  other: number;
}

interface Row {
  side: 'etcd' | 'minkube';
  clients: number;
  result: GoResult;
  split: Split;
  /** With --parts, for Minkube: the leader's samples by what ran, in percent of its own. */
  leaderParts?: Record<string, number>;
}

/** What a sample of the leader ran, by its DSO and symbol in `perf report --sort dso,sym`. */
function partOf(dso: string, sym: string): string {
  if (/Scaveng|Marking|Sweep|MarkCompact|Heap::|Evacuat|ArrayBufferSweeper|RecordWrite|ConcurrentMarking/.test(sym)) return 'gc';
  if (dso === '[kernel.kallsyms]') return 'kernel';
  if (sym.startsWith('JS:') || dso.startsWith('[JIT]') || dso.startsWith('perf-')) return 'js';
  if (sym.startsWith('Builtins_')) return 'builtins';
  if (dso.startsWith('libc')) return 'libc';
  return 'node c++';
}

function leaderParts(data: string, pid: number): Record<string, number> {
  const report = execFileSync('perf', ['report', '-i', data, '--pid', String(pid), '--sort', 'dso,sym', '-g', 'none', '--stdio'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  const parts: Record<string, number> = {};
  let total = 0;
  for (const line of report.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (m === null) continue;
    const part = partOf(m[2]!, m[3]!.trim());
    parts[part] = (parts[part] ?? 0) + Number(m[1]);
    total += Number(m[1]);
  }
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round((100 * v) / total, 1)]));
}

/** The thread ids of a process now (a thread that starts later is counted under "other"). */
function threadsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

async function measure(side: Side, label: Row['side'], clients: number, seconds: number, extra: string[], dir: string, parts: boolean): Promise<Row> {
  const args = [...side.args, ...extra, '-op', 'put', '-clients', String(clients)];
  loadgen([...args, '-seconds', '2', '-warmup', '1']);
  // The load runs a second and a half before the samples start and a second and a half after they end.
  const child = spawn(loadgenBinary, [...args, '-seconds', String(seconds + 3), '-warmup', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise((r) => setTimeout(r, 1500));
  const servers = new Set(side.pids().flatMap(threadsOf));
  const client = new Set(child.pid === undefined ? [] : threadsOf(child.pid));
  const data = join(dir, `${label}-${clients}.perf`);
  execFileSync('perf', ['record', '-a', '-F', '499', '-o', data, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  await exited;
  const result = JSON.parse(out.trim().split('\n').pop()!) as GoResult;
  const report = execFileSync('perf', ['report', '-i', data, '--sort', 'pid,comm,dso', '-g', 'none', '--stdio'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  const percents: Split = { serverUser: 0, serverKernel: 0, clientUser: 0, clientKernel: 0, idle: 0, other: 0 };
  for (const line of report.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\d+):\S*\s+(\S.*?)\s+(\S+)\s*$/.exec(line);
    if (m === null) continue;
    const [percent, tid, comm, dso] = [Number(m[1]), Number(m[2]), m[3]!, m[4]!];
    const kernel = dso === '[kernel.kallsyms]';
    if (tid === 0) percents.idle += percent;
    else if (servers.has(tid)) percents[kernel ? 'serverKernel' : 'serverUser'] += percent;
    else if (client.has(tid) || comm.startsWith('minkube-loadgen')) percents[kernel ? 'clientKernel' : 'clientUser'] += percent;
    else percents.other += percent;
  }
  // A percent of the samples is that share of every CPU for the window; per write at the load's rate.
  const cpus = availableParallelism();
  const split = Object.fromEntries(Object.entries(percents).map(([k, v]) => [k, round(((v / 100) * cpus * 1e6) / result.opsPerSec, 1)])) as unknown as Split;
  return { side: label, clients, result, split, ...(parts && label === 'minkube' ? { leaderParts: leaderParts(data, side.leaderPid) } : {}) };
}

async function main(): Promise<void> {
  const levels = arg('levels', '1,16,64,256').split(',').map(Number);
  const security = arg('security', 'insecure') as Security;
  const seconds = Number(arg('seconds', '3'));
  const h2 = flag('h2') ? ['-h2'] : [];
  const parts = flag('parts');
  const missing =
    spawnSync('perf', ['--version'], { stdio: 'ignore' }).status !== 0 ? 'no perf (apt-get install linux-perf)' : !etcdAvailable() ? 'no etcd binary (apt-get install etcd-server)' : buildLoadgen();
  if (missing !== null) {
    console.log(`cpu-split skipped: ${missing}`);
    printResult('cpu-split', { skipped: missing }, []);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'minkube-cpu-split-'));
  const rows: Row[] = [];
  try {
    // One side at a time, so the other's idle cluster takes no samples.
    const etcd = await etcdSide(security, dir);
    try {
      for (const clients of levels) rows.push(await measure(etcd, 'etcd', clients, seconds, [], dir, false));
    } finally {
      await etcd.cleanup();
    }
    const minkube = await minkubeSide(security, parts ? { nodeArgs: ['--perf-basic-prof'] } : {});
    const pids = minkube.pids();
    try {
      for (const clients of levels) rows.push(await measure(minkube, 'minkube', clients, seconds, h2, dir, parts));
    } finally {
      await minkube.cleanup();
      // --perf-basic-prof's symbol maps.
      for (const pid of pids) rmSync(`/tmp/perf-${pid}.map`, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const etcdAt = new Map(rows.filter((r) => r.side === 'etcd').map((r) => [r.clients, r]));
  printTable(
    `CPU per write (µs) by who spent it, TLS ${security === 'secure' ? 'on' : 'off'}${h2.length > 0 ? ', Minkube over HTTP/2' : ', Minkube over HTTP/1.1'}; ${seconds} s of samples per level, ${availableParallelism()} CPUs`,
    rows.map((r) => {
      const servers = r.split.serverUser + r.split.serverKernel;
      const e = etcdAt.get(r.clients)!;
      return {
        clients: r.clients,
        side: r.side,
        'writes/s': round(r.result.opsPerSec, 0),
        'p99 ms': r.result.p99Ms,
        'servers user / kernel': `${r.split.serverUser} / ${r.split.serverKernel}`,
        'servers vs etcd': round(servers / (e.split.serverUser + e.split.serverKernel), 2),
        'client user / kernel': `${r.split.clientUser} / ${r.split.clientKernel}`,
        idle: r.split.idle,
        other: r.split.other,
      };
    }),
  );
  if (parts) {
    const names = ['gc', 'kernel', 'js', 'builtins', 'libc', 'node c++'];
    printTable(
      "The Minkube leader's own samples by what ran (%)",
      rows.filter((r) => r.leaderParts !== undefined).map((r) => ({ clients: r.clients, ...Object.fromEntries(names.map((n) => [n, r.leaderParts![n] ?? 0])) })),
    );
  }
  printResult('cpu-split', { rows }, []);
}

await main();
