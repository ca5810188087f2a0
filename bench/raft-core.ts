// The Raft core's ceiling, 3 nodes with no real I/O, two ways: the cores alone (createRaftNode wired in memory: tick,
// step, take each Ready, "persist" nothing, advance), and each core inside the manager's driver in the simulator
// (zero disk latency, no faults, checkers off). Committed entries per second of real time and of CPU time, and
// retained heap bytes per entry, at 1, 16 and 256 commands per propose call with the pipeline kept full.
// `npx tsx bench/raft-core.ts [--seconds 3] [--entries-max 1000000] [--quick] [--checks] [--bytes 16] [--mode both|core|driver]`
import { loadavg } from 'node:os';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { logIndex } from '../src/lib/ids.js';
import { createRaftNode, type Message, type RaftNode } from '../src/raft/index.js';
import { emptyHardState, makeConfig } from '../test/raft/harness.js';
import { SimCluster, defaultRaftParams } from '../test/sim/cluster.js';
import { CountingStateMachine } from '../test/sim/state-machine.js';
import type { SummaryRow } from './summary.js';
import { arg, flag, printResult, printTable, round } from './support.js';

/** 'core': the cores alone; 'driver': each core inside the manager's driver, in the simulator. */
export type RaftCoreMode = 'core' | 'driver';

export interface RaftCoreResult {
  mode: RaftCoreMode;
  batch: number;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  /** Per second of this process's CPU time: what the core does when the machine is shared. */
  entriesPerCpuSec: number;
  heapBytesPerEntry: number;
  messages: number;
}

export interface RaftCoreOptions {
  seconds: number;
  batches: readonly number[];
  /** Run the safety checkers too (measures the simulator's overhead, not the core's). */
  checks: boolean;
  commandBytes: number;
  /** Stop after this many committed entries: with no snapshots yet the log only grows, and so does GC work. */
  entriesMax: number;
  modes: readonly RaftCoreMode[];
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Fills a batch with fresh commands: views into larger buffers, as decoded request bodies and network frames are. */
class CommandSource {
  private static readonly chunkBytes = 64 * 1024;
  private chunk = new Uint8Array(CommandSource.chunkBytes);
  private chunkOffset = 0;
  private seq = 0;

  constructor(private readonly commandBytes: number) {}

  fill(commands: Uint8Array[]): void {
    for (let i = 0; i < commands.length; i++) {
      if (this.chunkOffset + this.commandBytes > this.chunk.byteLength) {
        this.chunk = new Uint8Array(CommandSource.chunkBytes);
        this.chunkOffset = 0;
      }
      const data = this.chunk.subarray(this.chunkOffset, this.chunkOffset + this.commandBytes);
      this.chunkOffset += this.commandBytes;
      data[0] = this.seq & 0xff;
      data[1] = (this.seq >>> 8) & 0xff;
      this.seq++;
      commands[i] = data;
    }
  }
}

/** Keep several appends' worth of proposals in flight, the way many concurrent clients would. */
const windowEntriesOf = (batch: number): number => Math.max(8 * batch, 1024);

/** Message delivery rounds per tick: the simulator's messages take 1 unit and its ticks 100. */
const ROUNDS_PER_TICK = 100;

/**
 * Three cores and a network that delivers every message one round after the Ready that carried it. Each core is
 * configured as the simulator configures the driver's (pre-vote, check-quorum, lazy commit, the default limits).
 */
class CoreCluster {
  readonly cores: RaftNode[];
  private readonly byId = new Map<string, RaftNode>();
  private queue: Message[] = [];
  private spare: Message[] = [];
  private rounds = 0;
  messages = 0;

  constructor(
    /** Called with each Ready's committed entries, per core. */
    private readonly onCommitted: (core: RaftNode, committed: number) => void,
  ) {
    const ids = ['n1', 'n2', 'n3'];
    this.cores = ids.map((id, i) =>
      createRaftNode(makeConfig(id, ids, 1000 + i, defaultRaftParams), {
        hardState: emptyHardState,
        entries: [],
        applied: logIndex(0),
      }),
    );
    this.cores.forEach((core, i) => this.byId.set(ids[i]!, core));
  }

  /** Takes every Ready (persisting nothing: the core holds its log in memory), then delivers what they sent. */
  round(): void {
    if (++this.rounds % ROUNDS_PER_TICK === 0) for (const core of this.cores) core.tick();
    for (const core of this.cores) {
      while (core.hasReady()) {
        const rd = core.ready();
        for (const m of rd.messages) this.queue.push(m);
        let commands = 0;
        for (const e of rd.committedEntries) if (e.type === 'command') commands++;
        if (commands > 0) this.onCommitted(core, commands);
        core.advance(rd);
      }
    }
    const delivering = this.queue;
    this.queue = this.spare;
    this.spare = delivering;
    this.messages += delivering.length;
    for (const m of delivering) this.byId.get(m.to)!.step(m);
    delivering.length = 0;
  }
}

/** The cores alone, one cluster per batch size. */
export function benchRaftCoreAloneBatch(batch: number, o: RaftCoreOptions): RaftCoreResult {
  const heapBefore = heapUsed();
  let committed = 0;
  let leader: RaftNode | null = null;
  const c = new CoreCluster((core, n) => {
    if (core === leader) committed += n;
  });
  const candidate = c.cores[0]!;
  candidate.campaign();
  for (let i = 0; i < 100 && candidate.currentRole() !== 'leader'; i++) c.round();
  if (candidate.currentRole() !== 'leader') throw new Error('no leader');
  leader = candidate;
  const windowEntries = windowEntriesOf(batch);
  const source = new CommandSource(o.commandBytes);
  const commands: Uint8Array[] = new Array<Uint8Array>(batch);
  let proposed = 0;
  const messagesBefore = c.messages;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const deadline = started + o.seconds * 1000;
  for (let rounds = 0; ; rounds++) {
    while (proposed - committed < windowEntries) {
      source.fill(commands);
      const r = leader.propose(commands);
      if (!r.ok) throw new Error(`the leader rejected a proposal: ${r.reason}`);
      proposed += batch;
    }
    c.round();
    if ((rounds & 63) === 0 && (performance.now() >= deadline || committed >= o.entriesMax)) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const messages = c.messages - messagesBefore;
  const heapAfter = heapUsed();
  // Keep the cores alive until the heap was measured.
  if (c.cores.length !== 3) throw new Error('unreachable');
  return resultOf('core', batch, committed, seconds, cpu, heapAfter - heapBefore, messages);
}

function resultOf(mode: RaftCoreMode, batch: number, entries: number, seconds: number, cpu: NodeJS.CpuUsage, heapBytes: number, messages: number): RaftCoreResult {
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    mode,
    batch,
    entries,
    seconds: round(seconds, 2),
    entriesPerSec: Math.round(entries / seconds),
    entriesPerCpuSec: Math.round(entries / cpuSeconds),
    heapBytesPerEntry: Math.round(heapBytes / Math.max(1, entries)),
    messages,
  };
}

/** Each core inside the manager's driver, one cluster per batch size, so each heap figure covers only its own log. */
export async function benchRaftCoreBatch(batch: number, o: RaftCoreOptions): Promise<RaftCoreResult> {
  const heapBefore = heapUsed();
  const c = new SimCluster({
    seed: 1,
    nodes: 3,
    checks: o.checks,
    diskLatencyUnitsMin: 0,
    diskLatencyUnitsMax: 0,
    network: { delayUnitsMin: 1, delayUnitsMax: 1 },
    createStateMachine: () => new CountingStateMachine(),
  });
  if (!(await c.runUntil(() => c.leader() !== null, 100))) throw new Error('no leader');
  const leader = c.node(c.leader()!);
  const windowEntries = windowEntriesOf(batch);
  let committed = 0;
  c.onApply((node, entry) => {
    if (node === leader && entry.type === 'command') committed++;
  });
  let proposed = 0;
  const source = new CommandSource(o.commandBytes);
  const commands: Uint8Array[] = new Array<Uint8Array>(batch);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const deadline = started + o.seconds * 1000;
  for (let events = 0; ; events++) {
    while (proposed - committed < windowEntries) {
      source.fill(commands);
      const r = c.propose(leader.index, commands);
      if (r === null || !r.ok) throw new Error(`the leader rejected a proposal: ${r === null ? 'down' : r.reason}`);
      proposed += batch;
    }
    if (!(await c.step())) throw new Error('the event queue ran dry');
    if ((events & 1023) === 0 && (performance.now() >= deadline || committed >= o.entriesMax)) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const messages = c.stats.sentTotal;
  const heapAfter = heapUsed();
  // Keep the cluster alive until the heap was measured.
  if (c.nodes.length !== 3) throw new Error('unreachable');
  return resultOf('driver', batch, committed, seconds, cpu, heapAfter - heapBefore, messages);
}

export async function benchRaftCore(o: RaftCoreOptions): Promise<RaftCoreResult[]> {
  const warmup = { ...o, seconds: Math.min(0.5, o.seconds) }; // warm up the JIT
  const results: RaftCoreResult[] = [];
  if (o.modes.includes('core')) {
    benchRaftCoreAloneBatch(16, warmup);
    for (const b of o.batches) results.push(benchRaftCoreAloneBatch(b, o));
  }
  if (o.modes.includes('driver')) {
    await benchRaftCoreBatch(16, warmup);
    for (const b of o.batches) results.push(await benchRaftCoreBatch(b, o));
  }
  return results;
}

function modesOf(name: string): RaftCoreMode[] {
  if (name === 'both') return ['core', 'driver'];
  if (name === 'core' || name === 'driver') return [name];
  console.error(`--mode must be both, core or driver, not ${name}`);
  process.exit(2);
}

const commandsPerPropose = (batch: number): string => `${batch} command${batch === 1 ? '' : 's'}/propose`;

/** The driver rows keep the metric name they had before the core-only rows existed, so history stays comparable. */
function summaryRow(r: RaftCoreResult): SummaryRow {
  const alone = r.mode === 'core';
  return {
    metric: alone ? `Raft core alone, ${commandsPerPropose(r.batch)}` : `Raft core ceiling, ${commandsPerPropose(r.batch)}`,
    unit: 'entries/s',
    value: r.entriesPerSec,
    better: 'higher',
    note: `${alone ? '3 cores wired in memory' : "3 simulated nodes, each in the manager's driver"}, no I/O; ${r.entriesPerCpuSec} entries/CPU s; ${r.heapBytesPerEntry} heap B/entry`,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const o: RaftCoreOptions = {
    seconds: Number(arg('seconds', quick ? '1' : '3')),
    batches: [1, 16, 256],
    checks: flag('checks'),
    commandBytes: Number(arg('bytes', '16')),
    entriesMax: Number(arg('entries-max', '1000000')),
    modes: modesOf(arg('mode', 'both')),
  };
  const results = await benchRaftCore(o);
  printTable(
    `Raft core: 3 nodes, no I/O; mode core = the cores alone wired in memory, driver = each in the manager's driver in the simulator${o.checks ? ' (checkers on)' : ''}; ${o.commandBytes}-byte commands, ${o.seconds} s or ${o.entriesMax} entries per batch size (load ${round(loadavg()[0]!, 1)})`,
    results.map((r) => ({ ...r })),
  );
  const summary: SummaryRow[] = results.map(summaryRow);
  printResult('raft-core', { commandBytes: o.commandBytes, checks: o.checks, loadAverage: round(loadavg()[0]!, 1), results }, summary);
}
