// `npm run bench`: runs the registered benchmarks, each in its own process (a clean heap, its own flags), gathers
// their headline numbers into one table (stdout and bench/results/latest.md) and everything into latest.json.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { etcdAvailable } from './etcd.js';
import { formatSummary, type SummaryRow, type TableRow } from './summary.js';

const usage = `usage: npm run bench [-- [--quick] [--peer etcd] [--only a,b] [--all] [--list]]
  (no flags)    every default benchmark at full size (several minutes)
  --quick       the same set scaled down (fewer seconds, keys, trials, containers); under 2 minutes
  --peer etcd   also run the KV write and failover workloads against a 3-member etcd, with ratios, and
                kv-go: one Go load generator driving etcd through clientv3 (gRPC) and Minkube over HTTP
  --only a,b    just these benchmarks (see --list)
  --all         the default set plus the micro-benchmarks (storage, transport, docker-start)
  --list        name and description of every benchmark`;

interface RunOptions {
  readonly quick: boolean;
  readonly peer: 'etcd' | null;
}

interface Benchmark {
  readonly name: string;
  /** A file in bench/ that runs standalone and ends its output with a JSON line holding `summary` rows. */
  readonly file: string;
  readonly description: string;
  /** In the run without --only; the others (micro-benchmarks) run with --all or --only. */
  readonly byDefault: boolean;
  /** Its flags in this run; with --quick, smaller sizes that the benchmark names in its rows. */
  readonly args: (o: RunOptions) => string[];
}

const withPeer = (o: RunOptions): string[] => (o.peer === null ? [] : ['--peer', o.peer]);
const ifQuick = (o: RunOptions, quick: string[], full: string[] = []): string[] => (o.quick ? quick : full);

// One entry per benchmark: adding one is adding a line here.
const registry: readonly Benchmark[] = [
  { name: 'raft-core', file: 'raft-core.ts', description: 'the Raft core ceiling: 3 nodes, no I/O, entries/s, the cores alone and each in the manager\'s driver in the simulator', byDefault: true, args: (o) => ifQuick(o, ['--seconds', '0.5']) },
  { name: 'kv-write', file: 'kv-write.ts', description: 'KV writes at 1/16/64/256 clients and linearizable reads over HTTP, 3 managers', byDefault: true, args: (o) => [...ifQuick(o, ['--seconds', '1', '--warmup', '1']), ...withPeer(o)] },
  { name: 'failover', file: 'failover.ts', description: 'leader SIGKILL -> next acknowledged write, median of trials', byDefault: true, args: (o) => ['--runs', o.quick ? '2' : '5', ...withPeer(o)] },
  { name: 'placement', file: 'placement.ts', description: 'tasks accepted and placed per second, 3 managers + 2 workers', byDefault: true, args: (o) => ifQuick(o, ['--tasks', '500', '--scenario', 'backlog']) },
  { name: 'containers', file: 'containers.ts', description: 'busybox tasks through Minkube until all run, vs docker run in a row', byDefault: true, args: (o) => ['--count', o.quick ? '10' : '50'] },
  { name: 'manager-rss', file: 'manager-rss.ts', description: 'manager RSS holding 100,000 keys, and restart time', byDefault: true, args: (o) => ['--keys', o.quick ? '5000' : '100000'] },
  { name: 'snapshot', file: 'snapshot.ts', description: 'holding 100,000 keys + 100,000 tasks: RSS, restart, a new member joining by snapshot', byDefault: true, args: (o) => ifQuick(o, ['--keys', '2000', '--tasks', '2000', '--threshold', '1000'], ['--keys', '100000', '--tasks', '100000']) },
  { name: 'memory', file: 'memory.ts', description: "where a manager's bytes go holding 100,000 keys + 100,000 tasks: heap per record, restore, RSS split per launch variant", byDefault: false, args: (o) => ifQuick(o, ['--keys', '3000', '--tasks', '3000', '--variants', 'plain,tuned']) },
  { name: 'retention', file: 'retention.ts', description: '200,000 tasks finished with tasks.retention on and off: records kept, RSS, snapshot size', byDefault: true, args: (o) => ifQuick(o, ['--tasks', '5000', '--finished-max', '1000']) },
  { name: 'startup', file: 'startup.ts', description: 'minkube --help and status wall, a manager\'s CPU to ready: built JavaScript vs the sources', byDefault: true, args: (o) => ['--runs', o.quick ? '3' : '10'] },
  { name: 'metrics-cost', file: 'metrics-cost.ts', description: 'KV writes at 64 clients with metrics on (scraped every 1 s) vs off, same run', byDefault: false, args: (o) => ifQuick(o, ['--quick']) },
  { name: 'tracing-cost', file: 'tracing-cost.ts', description: 'KV writes at 64 clients untraced, with a traceparent on every request, and exported over OTLP, same run', byDefault: false, args: (o) => ifQuick(o, ['--quick']) },
  { name: 'kv-go', file: 'kv-go.ts', description: 'KV writes (1/16/64/256 clients) and reads (64) from one Go load generator: etcd through clientv3 (gRPC) vs Minkube over HTTP, TLS off and on; runs with --peer etcd', byDefault: false, args: (o) => ifQuick(o, ['--seconds', '1', '--warmup', '1']) },
  { name: 'latency', file: 'latency.ts', description: 'one client, one request at a time: PUT and GET /health p50/p90 with 1 and 3 managers', byDefault: false, args: (o) => ifQuick(o, ['--ops', '300']) },
  { name: 'sync-ceiling', file: 'sync-ceiling.ts', description: 'KV writes from the Go load generator: etcd vs this build vs copies of it without the marker and without syncing at all (the bound of any storage design); needs etcd', byDefault: false, args: (o) => ifQuick(o, ['--seconds', '1', '--warmup', '1']) },
  { name: 'disk-writers', file: 'disk-writers.ts', description: "a synced one-entry write with 3 processes syncing at once: a manager's (LevelDB + marker) vs a preallocated WAL with and without the marker", byDefault: false, args: (o) => ifQuick(o, ['--writes', '300']) },
  { name: 'storage', file: 'storage.ts', description: 'synced saves on classic-level', byDefault: false, args: (o) => ifQuick(o, ['--saves', '100', '--batches', '50']) },
  { name: 'transport', file: 'transport.ts', description: 'appends over loopback TCP', byDefault: false, args: (o) => ifQuick(o, ['--seconds', '1']) },
  { name: 'services', file: 'services.ts', description: 'a 50-replica service until healthy and a rolling update of 20, vs Docker Swarm; reconciler cost at 1,000 services', byDefault: false, args: (o) => ifQuick(o, ['--replicas', '10', '--update', '6', '--services', '100']) },
  { name: 'placement-dns', file: 'placement-dns.ts', description: 'round-robin placements/s with and without constraints and resources; DNS answers/s and UDP queries/s', byDefault: false, args: (o) => ifQuick(o, ['--tasks', '5000', '--queries', '1000']) },
  { name: 'restart', file: 'restart.ts', description: "a follower's restart with 100,000 keys + 100,000 tasks in phases (read, decode, restore, replay, driver open), each in a fresh process", byDefault: false, args: (o) => ifQuick(o, ['--quick']) },
  { name: 'storage-repair', file: 'storage-repair.ts', description: 'a follower with its newest LevelDB file cut to 60%: restart -> voter with all data, vs member remove + wipe + --join (10,000 and 100,000 entries, and with snapshots)', byDefault: false, args: (o) => ifQuick(o, ['--sizes', '2000']) },
  { name: 'docker-start', file: 'docker-start.ts', description: 'starting busybox containers through DockerRuntime', byDefault: false, args: (o) => ['--count', o.quick ? '10' : '50'] },
];

const benchDir = dirname(fileURLToPath(import.meta.url));
/** A benchmark still running after this long is killed (with its cluster: it runs in its own process group). */
const timeoutSeconds = { quick: 300, full: 1800 };

interface Outcome {
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
  args: string[];
  result: { summary?: SummaryRow[] } | null;
}

let running: ChildProcess | null = null;

/** Kills the running benchmark's whole process group: its managers, workers and etcd members too. */
function killRunning(): void {
  if (running?.pid !== undefined && running.exitCode === null) {
    try {
      process.kill(-running.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Runs one benchmark with this process's loader flags, echoing its output except the final JSON line. */
function runOne(b: Benchmark, o: RunOptions): Promise<Outcome> {
  const started = performance.now();
  const args = b.args(o);
  const child = spawn(process.execPath, [...process.execArgv, join(benchDir, b.file), ...args], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  running = child;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killRunning();
  }, (o.quick ? timeoutSeconds.quick : timeoutSeconds.full) * 1000);
  let partial = '';
  let json: string | null = null;
  const take = (line: string): void => {
    if (line.startsWith('{"bench"')) json = line;
    else process.stdout.write(line + '\n');
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    lines.forEach(take);
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      running = null;
      if (partial !== '') take(partial);
      let result: Outcome['result'] = null;
      try {
        result = json === null ? null : (JSON.parse(json) as Outcome['result']);
      } catch {
        result = null;
      }
      const seconds = Math.round((performance.now() - started) / 100) / 10;
      resolve({ ok: code === 0 && result !== null, exitCode: code, timedOut, seconds, args, result });
    });
  });
}

/** The benchmark's rows, or one row saying why there are none. */
function rowsOf(b: Benchmark, r: Outcome): TableRow[] {
  const rows = r.result?.summary ?? [];
  if (r.ok && rows.length > 0) return rows.map((row) => ({ bench: b.name, ...row }));
  const why = r.timedOut ? `timed out after ${r.seconds} s` : r.ok ? 'no summary rows' : `failed (exit ${r.exitCode ?? 'signal'}); its output is above`;
  return [{ bench: b.name, metric: b.description, unit: '', value: null, better: 'higher', note: why }];
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: benchDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

const loadAverage = (): number[] => loadavg().map((l) => Math.round(l * 10) / 10);

interface Parsed {
  options: RunOptions;
  selected: Benchmark[];
  list: boolean;
  flags: Record<string, unknown>;
}

/** The flags, or the exit code to stop with (2 after a usage message, 0 after --help). */
function parse(argv: string[]): Parsed | number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        only: { type: 'string' },
        all: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        peer: { type: 'string' },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (values.peer !== undefined && values.peer !== 'etcd') {
    console.error(`--peer: only etcd is known, not "${values.peer}"\n${usage}`);
    return 2;
  }
  const wanted = values.only?.split(',').map((s) => s.trim()).filter(Boolean) ?? null;
  const unknown = wanted?.filter((w) => !registry.some((b) => b.name === w)) ?? [];
  if (unknown.length > 0 || (wanted !== null && values.all)) {
    const why = unknown.length > 0 ? `unknown benchmark(s): ${unknown.join(', ')}; known: ${registry.map((b) => b.name).join(', ')}` : '--only and --all do not mix';
    console.error(`${why}\n${usage}`);
    return 2;
  }
  // --peer etcd brings the native-client comparison (kv-go) into the default run.
  const byDefault = (b: Benchmark): boolean => b.byDefault || (b.name === 'kv-go' && values.peer === 'etcd');
  const selected = registry.filter((b) => (wanted === null ? values.all || byDefault(b) : wanted.includes(b.name)));
  const options = { quick: values.quick, peer: values.peer === 'etcd' ? ('etcd' as const) : null };
  return { options, selected, list: values.list, flags: values };
}

async function main(): Promise<number> {
  const parsed = parse(process.argv.slice(2));
  if (typeof parsed === 'number') return parsed;
  if (parsed.list) {
    for (const b of registry) console.log(`${b.name.padEnd(14)} ${b.byDefault ? '(default) ' : '          '}${b.description}`);
    return 0;
  }
  let { options } = parsed;
  if (options.peer === 'etcd' && !etcdAvailable()) {
    console.log('--peer etcd: no etcd binary found (Debian package etcd-server); running without the peer');
    options = { ...options, peer: null };
  }
  const at = new Date().toISOString();
  const loadAverageStart = loadAverage();
  const started = performance.now();
  const results: Record<string, Outcome> = {};
  const rows: TableRow[] = [];
  for (const b of parsed.selected) {
    console.log(`\n=== ${b.name}${options.quick ? ' (quick)' : ''}: ${b.description}`);
    const r = await runOne(b, options);
    results[b.name] = r;
    rows.push(...rowsOf(b, r));
  }
  const seconds = Math.round((performance.now() - started) / 1000);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memoryGiB: Math.round(totalmem() / 2 ** 30), platform: `${process.platform} ${release()}`, node: process.version, loadAverageStart, loadAverageEnd: loadAverage() };
  const commit = gitCommit();
  const table = formatSummary(rows, options.peer);
  const header = [
    `${at}${options.quick ? ', --quick' : ''}${options.peer === null ? '' : `, --peer ${options.peer}`}; ${seconds} s in all; commit ${commit ?? '?'}`,
    `${machine.cpus} x ${machine.cpuModel ?? '?'}, ${machine.memoryGiB} GiB, node ${machine.node}; load average ${loadAverageStart.join(' ')} at the start, ${machine.loadAverageEnd.join(' ')} at the end`,
  ];
  const out = join(benchDir, 'results');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'latest.json'), JSON.stringify({ at, flags: parsed.flags, options, commit, seconds, machine, summary: rows, results }, null, 2) + '\n');
  await writeFile(join(out, 'latest.md'), `# Minkube benchmarks\n\n${header.join('  \n')}\n\n${table}\n`);
  console.log(`\n${header.join('\n')}\n\n${table}\n\nwrote ${join(out, 'latest.json')} and latest.md`);
  const failed = parsed.selected.filter((b) => !results[b.name]!.ok).map((b) => b.name);
  if (failed.length > 0) console.log(`failed: ${failed.join(', ')}`);
  return failed.length === 0 ? 0 : 1;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killRunning();
    process.exit(130);
  });
}
process.exitCode = await main();
