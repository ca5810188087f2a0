// Where a manager's heap goes (issue 13, "Memory"): in one process with no I/O, N keys (100-byte values, one PUT
// per entry, as over HTTP) and N pending tasks (one submission per entry with an Idempotency-Key, as bench/snapshot
// loads them) applied through the state machine; the heap after each (after a full GC), the snapshot's size and
// encode time, and a restore from it into a fresh state machine (a follower's restart, its state part): time, heap.
// `--heap-summary` also writes a heap snapshot and prints the biggest constructors by self size.
// Then the same state in a manager process, once per launch variant (`--variants`, default all; see `variants`):
// the state is written as a backup and restored (`minkube snapshot restore`'s code) into the data directory of a
// one-manager cluster; the manager starts from it (to "raft state loaded", to GET /ready), its RSS and where the
// bytes are, and a restart (SIGKILL, start) timed the same way.
// `npx tsx bench/memory.ts [--keys 100000] [--tasks 100000] [--heap-summary] [--variants a,b] [--in-process-only] [--settle-s 2]`
// First: the in-process measures decode with msgpackr's JavaScript string reader, as a manager does.
import './msgpackr-js.js';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeCommand, type Command } from '../src/kv/commands.js';
import { KvStateMachine } from '../src/kv/state-machine.js';
import { logIndex, nodeId, term } from '../src/lib/ids.js';
import { encodeBackup } from '../src/manager/backup-file.js';
import { restoreBackup } from '../src/manager/backup-restore.js';
import { encodeSnapshot } from '../src/manager/members.js';
import { nodeLaunchEnv, nodeLaunchFlags } from '../src/daemon/launch.js';
import { ProcCluster, eventually, sleep } from '../test/support/cluster.js';
import { breakdownOf, probeArgs, rssMiB, type MemoryBreakdown } from './mem-breakdown.js';
import type { SummaryRow } from './summary.js';
import { arg, flag, printResult, printTable, round } from './support.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapMiB(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Applies commands as a manager's proposer does: one client, acknowledging everything before each new seq. */
function applier(sm: KvStateMachine): (cmd: Command) => void {
  let index = sm.appliedIndex;
  let seq = 0;
  return (cmd) => {
    seq++;
    const r = sm.apply(++index, encodeCommand({ clientId: 'm1-proposer', seq, ...(seq > 1 ? { ackSeq: seq - 1 } : {}), cmd }));
    if (!r.ok) throw new Error(`entry ${index}: ${r.code}: ${r.message}`);
  };
}

/** Task ids as TaskIdGenerator makes them: 't' + 9 base-36 ms + 3 counter + 5 random, 18 characters. */
const taskId = (i: number): string => `t${(1_780_000_000_000 + i).toString(36).padStart(9, '0')}000${(i * 7919 % 36 ** 5).toString(36).padStart(5, '0')}`;

export interface MemoryResult {
  keys: number;
  tasks: number;
  baseMiB: number;
  bytesPerKey: number;
  bytesPerTask: number;
  heapMiB: number;
  /** The heap after the snapshot's capture compacted the records into its bytes (they are outside the heap). */
  compactedHeapMiB: number;
  snapshotBytes: number;
  encodeMs: number;
  restoreMs: number;
  restoredHeapMiB: number;
  heapSummary: { name: string; count: number; MiB: number }[] | null;
}

function load(keys: number, tasks: number): { sm: KvStateMachine; base: number; afterKeys: number; afterTasks: number } {
  const base = heapMiB();
  const sm = new KvStateMachine();
  const apply = applier(sm);
  const value = 'v'.repeat(100);
  for (let i = 0; i < keys; i++) apply({ op: 'put', key: `key-${i}`, value });
  const afterKeys = heapMiB();
  for (let i = 0; i < tasks; i++) {
    const spec = { name: `bench-${i}`, image: 'busybox:latest', command: ['sleep', '3600'], env: { INDEX: String(i) } };
    apply({ op: 'task.submit', taskId: taskId(i), spec, atMs: 1_780_000_000_000 + i, idempotencyKey: `bench-task-${i}` });
  }
  return { sm, base, afterKeys, afterTasks: heapMiB() };
}

/** Self size per constructor (the heap snapshot's "summary" view), biggest first. */
async function heapSummary(top: number): Promise<{ name: string; count: number; MiB: number }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'minkube-bench-heap-'));
  try {
    const file = writeHeapSnapshot(join(dir, 'h.heapsnapshot'));
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(file)) chunks.push(c as Buffer);
    const snap = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
      nodes: number[];
      strings: string[];
    };
    const fields = snap.snapshot.meta.node_fields;
    const [typeAt, nameAt, sizeAt, width] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size'), fields.length];
    const types = snap.snapshot.meta.node_types[0];
    const by = new Map<string, { count: number; bytes: number }>();
    for (let i = 0; i < snap.nodes.length; i += width) {
      const type = types[snap.nodes[i + typeAt]!]!;
      const name = type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + nameAt]!]! : `(${type})`;
      const e = by.get(name) ?? { count: 0, bytes: 0 };
      e.count++;
      e.bytes += snap.nodes[i + sizeAt]!;
      by.set(name, e);
    }
    return [...by].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top).map(([name, e]) => ({ name, count: e.count, MiB: round(e.bytes / 2 ** 20, 1) }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchMemory(keys: number, tasks: number, summary: boolean): Promise<MemoryResult & { sm: KvStateMachine }> {
  const { sm, base, afterKeys, afterTasks } = load(keys, tasks);
  const t0 = performance.now();
  const bytes = await sm.captureSnapshot()();
  const encodeMs = performance.now() - t0;
  const afterCompaction = heapMiB();
  const heapSummaryRows = summary ? await heapSummary(25) : null;
  const fresh = new KvStateMachine();
  const t1 = performance.now();
  fresh.restore(bytes);
  const restoreMs = performance.now() - t1;
  const restoredHeap = heapMiB();
  return {
    keys, tasks, baseMiB: round(base, 1),
    bytesPerKey: Math.round(((afterKeys - base) * 2 ** 20) / Math.max(1, keys)),
    bytesPerTask: Math.round(((afterTasks - afterKeys) * 2 ** 20) / Math.max(1, tasks)),
    heapMiB: round(afterTasks - base, 1),
    compactedHeapMiB: round(afterCompaction - base, 1),
    snapshotBytes: bytes.length, encodeMs: round(encodeMs, 0), restoreMs: round(restoreMs, 0),
    // The original still lives (compacted): the restored one's share is the growth since.
    restoredHeapMiB: round(restoredHeap - afterCompaction, 1),
    heapSummary: heapSummaryRows,
    sm,
  };
}

/**
 * How the manager's node is launched: env and node flags. `plain` is how it was launched before issue 13's memory
 * work; the others add one setting each, and `tuned` is how they are launched now.
 */
const glibcArenas = String(8 * cpus().length);
const plainEnv = { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'false', MALLOC_ARENA_MAX: glibcArenas };
const plainArgs = ['--max-semi-space-size=16'];
const variants: Record<string, { env: Record<string, string>; nodeArgs: string[] }> = {
  // Node 20's and glibc's defaults (16 MiB semi-spaces, 8 malloc arenas per core), msgpackr's native string reader.
  plain: { env: plainEnv, nodeArgs: plainArgs },
  'msgpackr-js': { env: { ...plainEnv, MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' }, nodeArgs: plainArgs },
  'arena-2': { env: { ...plainEnv, MALLOC_ARENA_MAX: '2' }, nodeArgs: plainArgs },
  'semi-space-8': { env: plainEnv, nodeArgs: [...nodeLaunchFlags] },
  // tuned but glibc's mmap threshold left to move (as before nodeLaunchEnv).
  'mmap-threshold-default': { env: { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' }, nodeArgs: [...nodeLaunchFlags] },
  // As bin/minkube.js, `minkube up` and the test harness launch it now.
  tuned: { env: { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true', ...nodeLaunchEnv }, nodeArgs: [...nodeLaunchFlags] },
};
const defaultVariants = ['plain', 'msgpackr-js', 'semi-space-8', 'mmap-threshold-default', 'tuned'];

export interface ProcessResult {
  variant: string;
  /** From the spawn: the log's "raft state loaded", and GET /ready 200; the same after SIGKILL and a new start. */
  start: { stateLoadedMs: number | null; readyMs: number };
  restart: { stateLoadedMs: number | null; readyMs: number };
  /** Settled after the start, and after the restart. */
  memory: MemoryBreakdown | null;
  memoryAfterRestart: MemoryBreakdown | null;
  rssMiB: number;
}

/** Starts m1 and times it: spawn -> "raft state loaded" (its log) and -> GET /ready 200. */
async function timedStart(cluster: ProcCluster): Promise<{ stateLoadedMs: number | null; readyMs: number }> {
  const logPath = join(cluster.dir, 'm1.log');
  const [t0, wall0] = [performance.now(), Date.now()];
  cluster.start('m1');
  await eventually(async () => ((await cluster.http('m1', 'GET', '/ready', undefined, 1000).catch(() => null))?.status === 200 ? true : undefined), 300_000, 'm1 to be ready');
  const readyMs = round(performance.now() - t0, 0);
  await sleep(200); // the log lines are flushed through a pipe
  const loaded = readFileSync(logPath, 'utf8').split('\n').filter((l) => l.includes('"msg":"raft state loaded"')).at(-1);
  const at = loaded === undefined ? NaN : Date.parse((JSON.parse(loaded) as { time: string }).time);
  return { stateLoadedMs: Number.isNaN(at) || at < wall0 ? null : at - wall0, readyMs };
}

/** How long a started manager is left idle before its memory is read (`--settle-s`, default 2). */
const settleMs = Number(arg('settle-s', '2')) * 1000;

/** One manager holding `backup`'s state, launched as `variant` says. */
async function runProcess(variant: string, backup: string): Promise<ProcessResult> {
  const v = variants[variant]!;
  const saved = { ...process.env };
  Object.assign(process.env, v.env);
  const cluster = await ProcCluster.create({ managers: 1, nodeArgs: [...probeArgs, ...v.nodeArgs], launchEnv: {} });
  try {
    await restoreBackup({ file: backup, id: 'm1', dataDir: join(cluster.dir, 'm1'), configPath: cluster.configPath });
    const start = await timedStart(cluster);
    await sleep(settleMs);
    const memory = await breakdownOf(cluster.node('m1').proc?.pid);
    const rss = rssMiB(cluster.node('m1').proc?.pid);
    await cluster.signal('m1', 'SIGKILL');
    const restart = await timedStart(cluster);
    await sleep(settleMs);
    const memoryAfterRestart = await breakdownOf(cluster.node('m1').proc?.pid);
    return { variant, start, restart, memory, memoryAfterRestart, rssMiB: rss };
  } finally {
    process.env = saved;
    await cluster.cleanup();
  }
}

/** The state machine's state as a backup file (a one-voter cluster's snapshot at its applied index). */
async function writeBackup(sm: KvStateMachine, dir: string): Promise<string> {
  const id = nodeId('m1');
  const meta = { index: logIndex(sm.appliedIndex), term: term(1), voters: [id], learners: [] };
  const body = encodeSnapshot([[id, { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]], await sm.captureSnapshot()());
  const file = join(dir, 'state.mksnap');
  await writeFile(file, encodeBackup(meta, body, new Date().toISOString()));
  return file;
}

function summaryOf(r: MemoryResult, procs: ProcessResult[]): SummaryRow[] {
  const held = `${r.keys.toLocaleString('en-US')} keys + ${r.tasks.toLocaleString('en-US')} tasks`;
  const plain = procs.find((p) => p.variant === 'plain');
  const note = (p: ProcessResult): string => `${p.variant}; heap used ${p.memory?.heapUsed ?? '?'} MiB${plain !== undefined && p !== plain ? `; plain ${plain.memoryAfterRestart?.rss ?? '?'} MiB` : ''}`;
  return [
    ...procs.filter((p) => p.variant === 'tuned' || (p.variant === 'plain' && procs.length === 1)).flatMap((p): SummaryRow[] => [
      { metric: `manager RSS after a restart, ${held}`, unit: 'MiB', value: p.memoryAfterRestart?.rss ?? null, better: 'lower', note: note(p) },
      { metric: `manager restart to ready, ${held}`, unit: 'ms', value: p.restart.readyMs, better: 'lower', note: `"raft state loaded" at ${p.restart.stateLoadedMs ?? '?'} ms${plain !== undefined && p !== plain ? `; plain ${plain.restart.readyMs} ms` : ''}` },
    ]),
    { metric: `state machine heap, ${held}`, unit: 'MiB', value: r.heapMiB, better: 'lower', note: `${r.bytesPerKey} B/key, ${r.bytesPerTask} B/pending task; ${r.compactedHeapMiB} MiB once a snapshot compacted them` },
    { metric: `state machine restore from its snapshot, ${held}`, unit: 'ms', value: r.restoreMs, better: 'lower', note: `snapshot ${round(r.snapshotBytes / 2 ** 20, 1)} MiB, encoded in ${r.encodeMs} ms` },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { sm, ...r } = await benchMemory(Number(arg('keys', '100000')), Number(arg('tasks', '100000')), flag('heap-summary'));
  printTable(`State machine memory: ${r.keys} keys and ${r.tasks} pending tasks, in process`, [
    { measure: 'heap per key', value: `${r.bytesPerKey} B` },
    { measure: 'heap per pending task', value: `${r.bytesPerTask} B` },
    { measure: 'heap, state machine', value: `${r.heapMiB} MiB` },
    { measure: 'snapshot', value: `${round(r.snapshotBytes / 2 ** 20, 1)} MiB`, detail: `encoded in ${r.encodeMs} ms` },
    { measure: 'heap, state machine, after the snapshot', value: `${r.compactedHeapMiB} MiB`, detail: 'records compacted into the snapshot\'s bytes (outside the heap)' },
    { measure: 'restore into a fresh state machine', value: `${r.restoreMs} ms`, detail: `its heap ${r.restoredHeapMiB} MiB` },
  ]);
  if (r.heapSummary !== null) printTable('Heap by constructor (self size)', r.heapSummary);
  const procs: ProcessResult[] = [];
  if (!flag('in-process-only')) {
    const dir = await mkdtemp(join(tmpdir(), 'minkube-bench-memory-'));
    try {
      const backup = await writeBackup(sm, dir);
      for (const v of arg('variants', defaultVariants.join(',')).split(',')) {
        if (variants[v] === undefined) throw new Error(`--variants: unknown ${v}; known: ${Object.keys(variants).join(', ')}`);
        procs.push(await runProcess(v, backup));
        console.error(`${v}: ${JSON.stringify(procs.at(-1))}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const row = (p: ProcessResult, when: string, m: MemoryBreakdown | null, t: ProcessResult['start']): Record<string, string | number> => ({
      variant: p.variant, when, loadedMs: t.stateLoadedMs ?? '-', readyMs: t.readyMs, ...(m ?? {}),
    });
    printTable(
      `A manager process holding them (restored from a backup): start, restart, and where the bytes are (MiB); outside = rss - heapTotal - external`,
      procs.flatMap((p) => [row(p, 'start', p.memory, p.start), row(p, 'restart', p.memoryAfterRestart, p.restart)]),
    );
  }
  printResult('memory', { ...r, processes: procs }, summaryOf(r, procs));
}
