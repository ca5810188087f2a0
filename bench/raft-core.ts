// The Raft core with the manager's driver around it: a 3-node cluster in the simulator with no real I/O (zero disk latency, no faults, checkers
// off). Committed entries per second of real time and retained heap bytes per entry, at 1, 16 and 256 commands per
// propose call with the pipeline kept full. `npx tsx bench/raft-core.ts [--seconds 3] [--entries-max 1000000] [--quick]
// [--checks] [--bytes 16]`
import { loadavg } from 'node:os';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { SimCluster } from '../test/sim/cluster.js';
import { CountingStateMachine } from '../test/sim/state-machine.js';
import type { SummaryRow } from './summary.js';
import { arg, flag, printResult, printTable, round } from './support.js';

export interface RaftCoreResult {
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
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** One cluster per batch size, so each heap figure covers only its own log. */
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
  // Keep several appends' worth of proposals in flight, the way many concurrent clients would.
  const windowEntries = Math.max(8 * batch, 1024);
  let committed = 0;
  c.onApply((node, entry) => {
    if (node === leader && entry.type === 'command') committed++;
  });
  let proposed = 0;
  let seq = 0;
  const commands: Uint8Array[] = new Array<Uint8Array>(batch);
  const chunkBytes = 64 * 1024;
  let chunk = new Uint8Array(chunkBytes);
  let chunkOffset = 0;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const deadline = started + o.seconds * 1000;
  for (let events = 0; ; events++) {
    while (proposed - committed < windowEntries) {
      for (let i = 0; i < batch; i++) {
        // Commands are views into larger buffers, as decoded request bodies and network frames are.
        if (chunkOffset + o.commandBytes > chunk.byteLength) {
          chunk = new Uint8Array(chunkBytes);
          chunkOffset = 0;
        }
        const data = chunk.subarray(chunkOffset, chunkOffset + o.commandBytes);
        chunkOffset += o.commandBytes;
        data[0] = seq & 0xff;
        data[1] = (seq >>> 8) & 0xff;
        seq++;
        commands[i] = data;
      }
      const r = c.propose(leader.index, commands);
      if (r === null || !r.ok) throw new Error(`the leader rejected a proposal: ${r === null ? 'down' : r.reason}`);
      proposed += batch;
    }
    if (!(await c.step())) throw new Error('the event queue ran dry');
    if ((events & 1023) === 0 && (performance.now() >= deadline || committed >= o.entriesMax)) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const messages = c.stats.sentTotal;
  const heapAfter = heapUsed();
  const entries = committed;
  // Keep the cluster alive until the heap was measured.
  if (c.nodes.length !== 3) throw new Error('unreachable');
  return {
    batch,
    entries,
    seconds: round(seconds, 2),
    entriesPerSec: Math.round(entries / seconds),
    entriesPerCpuSec: Math.round(entries / cpuSeconds),
    heapBytesPerEntry: Math.round((heapAfter - heapBefore) / Math.max(1, entries)),
    messages,
  };
}

export async function benchRaftCore(o: RaftCoreOptions): Promise<RaftCoreResult[]> {
  await benchRaftCoreBatch(16, { ...o, seconds: Math.min(0.5, o.seconds) }); // warm up the JIT
  const results: RaftCoreResult[] = [];
  for (const b of o.batches) results.push(await benchRaftCoreBatch(b, o));
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const o: RaftCoreOptions = {
    seconds: Number(arg('seconds', quick ? '1' : '3')),
    batches: [1, 16, 256],
    checks: flag('checks'),
    commandBytes: Number(arg('bytes', '16')),
    entriesMax: Number(arg('entries-max', '1000000')),
  };
  const results = await benchRaftCore(o);
  printTable(
    `Raft core: 3 nodes in the simulator (each running the manager's driver), no I/O, ${o.commandBytes}-byte commands, ${o.seconds} s or ${o.entriesMax} entries per batch size${o.checks ? ', checkers on' : ''} (load ${round(loadavg()[0]!, 1)})`,
    results.map((r) => ({ ...r })),
  );
  const summary: SummaryRow[] = results.map((r) => ({
    metric: `Raft core ceiling, ${r.batch} command${r.batch === 1 ? '' : 's'}/propose`,
    unit: 'entries/s',
    value: r.entriesPerSec,
    better: 'higher',
    note: `3 simulated nodes, no I/O; ${r.heapBytesPerEntry} heap B/entry`,
  }));
  printResult('raft-core', { commandBytes: o.commandBytes, checks: o.checks, loadAverage: round(loadavg()[0]!, 1), results }, summary);
}
