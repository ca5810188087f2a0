// A follower's restart with a large state (issue 13: "100,000 keys + 100,000 tasks under 1 s"), in phases. The state
// is written once as a real data directory (LevelRaftStorage: the snapshot a leader would have sent, then a tail of
// log entries after it); then each phase runs in a fresh Node process, as a restart would, and reports its CPU and
// wall time after the imports (launched as a manager is: --max-semi-space-size=8, msgpackr's JavaScript string reader):
//   read     LevelRaftStorage.open + salvage() (what a manager runs at start): the snapshot file, its checksum, the log
//   file     just reading the snapshot file; crc32 just the checksum over it (both parts of `read`)
//   unpack   msgpack decode of the state alone (one unpack(), no checks, no indexes)
//   restore  KvStateMachine.restore (decode, checks, every index); prepare: prepareRestore + swap (what open() runs: it
//            scans the records and keeps them as their bytes until read, see src/kv/msgpack-scan.ts)
//   replay   restore, then applying the log tail (timed: the tail alone)
//   open     RaftNodeDriver.open over the data directory: everything the driver does before it starts
// `npx tsx bench/restart.ts [--keys 100000] [--tasks 100000] [--tail 1000] [--runs 3] [--quick] [--write DIR]`
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { encodeCommand, type Command } from '../src/kv/commands.js';
import { KvStateMachine } from '../src/kv/state-machine.js';
import { nodeLaunchFlags } from '../src/daemon/launch.js';
import { systemClock } from '../src/lib/clock.js';
import { logIndex, nodeId, term, type NodeId } from '../src/lib/ids.js';
import { limits } from '../src/lib/limits.js';
import { SeededRandom } from '../src/lib/random.js';
import { decodeSnapshot, encodeSnapshot, type Member } from '../src/manager/members.js';
import { RaftNodeDriver } from '../src/manager/node.js';
import { ManagerServiceImpl } from '../src/manager/service.js';
import type { Entry } from '../src/raft/types.js';
import { LevelRaftStorage } from '../src/storage/level.js';
import { MemoryNetwork } from '../src/transport/memory.js';
import type { SummaryRow } from './summary.js';
import { arg, flag, printResult, printTable, round } from './support.js';

const phases = ['read', 'file', 'crc32', 'unpack', 'restore', 'prepare', 'replay', 'open'] as const;
type Phase = (typeof phases)[number];

const taskIdOf = (i: number): string => `t${(1_780_000_000_000 + i).toString(36).padStart(9, '0')}000${((i * 7919) % 36 ** 5).toString(36).padStart(5, '0')}`;

function commandsFor(keys: number, tasks: number, tail: number): Command[] {
  const value = 'v'.repeat(100);
  const out: Command[] = [];
  for (let i = 0; i < keys; i++) out.push({ op: 'put', key: `key-${i}`, value });
  for (let i = 0; i < tasks; i++) {
    const spec = { name: `bench-${i}`, image: 'busybox:latest', command: ['sleep', '3600'], env: { INDEX: String(i) } };
    out.push({ op: 'task.submit', taskId: taskIdOf(i), spec, atMs: 1_780_000_000_000 + i, idempotencyKey: `bench-task-${i}` });
  }
  for (let i = 0; i < tail; i++) out.push({ op: 'put', key: `key-${i}`, value: `tail-${i}` });
  return out;
}

const encoded = (cmd: Command, seq: number): Uint8Array => encodeCommand({ clientId: 'bench', seq, ...(seq > 1 ? { ackSeq: seq - 1 } : {}), cmd });

const member = (id: string): Member => ({ id: nodeId(id), raftAddress: `raft-${id}`, apiAddress: `api-${id}` });
const voters: NodeId[] = ['m1', 'm2', 'm3'].map(nodeId);

/** Writes the data directory of follower m2: a snapshot of the first keys + tasks entries, then `tail` entries. */
async function writeDataDir(dir: string, keys: number, tasks: number, tail: number): Promise<{ snapshotBytes: number; index: number }> {
  const cmds = commandsFor(keys, tasks, tail);
  const sm = new KvStateMachine();
  const snapAt = keys + tasks;
  for (let i = 0; i < snapAt; i++) {
    const r = sm.apply(i + 1, encoded(cmds[i]!, i + 1));
    if (!r.ok) throw new Error(`entry ${i + 1}: ${r.code}`);
  }
  const data = encodeSnapshot(voters.map((id) => [id, member(id)]), await sm.captureSnapshot()());
  const storage = await LevelRaftStorage.open(dir);
  const meta = { index: logIndex(snapAt), term: term(1), voters, learners: [] };
  await storage.save({ term: term(1), vote: null, commit: logIndex(snapAt) }, [], { sync: true, snapshot: { meta, data } });
  const entries: Entry[] = [];
  for (let i = snapAt; i < cmds.length; i++) entries.push({ term: term(1), index: logIndex(i + 1), type: 'command', data: encoded(cmds[i]!, i + 1) });
  await storage.save({ term: term(1), vote: null, commit: logIndex(cmds.length) }, entries, { sync: true });
  await storage.close();
  return { snapshotBytes: data.length, index: cmds.length };
}

interface Measured {
  cpuMs: number;
  wallMs: number;
}

/** One phase, in this (fresh) process: its CPU and wall time. */
async function child(phase: Phase, dir: string): Promise<Measured> {
  const snapshotFile = async (): Promise<Buffer> => {
    const files = await readdir(join(dir, 'snapshots'));
    return readFileSync(join(dir, 'snapshots', files.find((f) => !f.includes('tmp'))!));
  };
  const loadState = async (): Promise<{ state: Uint8Array; entries: readonly Entry[] }> => {
    const storage = await LevelRaftStorage.open(dir, { salvage: true });
    const { state } = await storage.salvage();
    await storage.close();
    return { state: decodeSnapshot(state.snapshotData!).state, entries: state.entries };
  };
  // Everything the phase does not measure happens before the clock starts.
  const before = phase === 'crc32' ? await snapshotFile() : null;
  const loaded = phase === 'unpack' || phase === 'restore' || phase === 'prepare' || phase === 'replay' ? await loadState() : null;
  const restoredForReplay = phase === 'replay' ? new KvStateMachine() : null;
  if (restoredForReplay !== null) restoredForReplay.restore(loaded!.state);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  switch (phase) {
    case 'read': {
      const storage = await LevelRaftStorage.open(dir, { salvage: true });
      await storage.salvage();
      await storage.close();
      break;
    }
    case 'file':
      await snapshotFile();
      break;
    case 'crc32':
      crc32(before!);
      break;
    case 'unpack':
      new Packr({ useRecords: false, moreTypes: false }).unpack(loaded!.state);
      break;
    case 'restore':
      new KvStateMachine().restore(loaded!.state);
      break;
    case 'prepare':
      (await new KvStateMachine().prepareRestore(loaded!.state))();
      break;
    case 'replay': {
      const sm = restoredForReplay!;
      for (const e of loaded!.entries) sm.apply(e.index, e.data);
      break;
    }
    case 'open': {
      const network = new MemoryNetwork();
      const id = nodeId('m2');
      const transport = network.transport(id);
      const logger = pino({ level: 'silent' });
      const service = new ManagerServiceImpl({ id, clientId: 'm2.bench', logger });
      const storage = await LevelRaftStorage.open(dir, { salvage: true });
      const driver = await RaftNodeDriver.open({
        id, members: voters.map(member), storage, transport, stateMachine: service.stateMachine, logger, clock: systemClock,
        random: new SeededRandom(1), clientId: 'm2.bench', tickMs: 50, electionTicks: 6, heartbeatTicks: 1,
        proposalQueueMax: limits.proposalQueueMax, snapshotThresholdEntries: 1_000_000, snapshotThresholdBytes: 1 << 30,
      });
      void driver;
      await storage.close();
      break;
    }
  }
  const used = process.cpuUsage(cpu0);
  return { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - t0 };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const childPhase = arg('child', '');
  if (childPhase !== '') {
    const m = await child(childPhase as Phase, arg('dir', ''));
    process.stdout.write(`${JSON.stringify(m)}\n`);
    return;
  }
  const quick = flag('quick');
  const writeTo = arg('write', '');
  if (writeTo !== '') {
    // For profiling a phase: `--write DIR`, then `node --import tsx --cpu-prof bench/restart.ts --child restore --dir DIR`.
    await writeDataDir(writeTo, Number(arg('keys', '100000')), Number(arg('tasks', '100000')), Number(arg('tail', '1000')));
    return;
  }
  const keys = Number(arg('keys', quick ? '20000' : '100000'));
  const tasks = Number(arg('tasks', quick ? '20000' : '100000'));
  const tail = Number(arg('tail', '1000'));
  const runs = Number(arg('runs', quick ? '1' : '3'));
  const dir = await mkdtemp(join(tmpdir(), 'minkube-bench-restart-'));
  try {
    const written = await writeDataDir(join(dir, 'm2'), keys, tasks, tail);
    console.log(`data directory: ${keys} keys + ${tasks} tasks in a ${round(written.snapshotBytes / 2 ** 20, 1)} MiB snapshot, then ${tail} entries`);
    const results: Record<string, Measured> = {};
    // Runs interleaved (every phase once, then again), so a change in the machine's load hits every phase alike.
    const samples = new Map<Phase, Measured[]>(phases.map((p) => [p, []]));
    for (let r = 0; r < runs; r++) {
      for (const phase of phases) {
        // Launched as a manager is (bin/minkube.js, src/daemon/launch.ts): msgpackr's JavaScript string reader, a small young generation.
        const out = execFileSync(process.execPath, [...nodeLaunchFlags, ...process.execArgv, process.argv[1]!, '--child', phase, '--dir', join(dir, 'm2')], {
          encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ?? 'true' },
        });
        samples.get(phase)!.push(JSON.parse(out.trim().split('\n').at(-1)!) as Measured);
      }
    }
    for (const [phase, ms] of samples) results[phase] = { cpuMs: round(median(ms.map((m) => m.cpuMs)), 0), wallMs: round(median(ms.map((m) => m.wallMs)), 0) };
    const what: Record<Phase, string> = {
      read: 'LevelRaftStorage open + salvage: snapshot file, checksum, log',
      file: 'the snapshot file read alone',
      crc32: 'the snapshot checksum alone',
      unpack: 'msgpack decode of the state alone',
      restore: 'KvStateMachine.restore: decode, checks, indexes',
      prepare: "prepareRestore + swap (the driver's open: records scanned, kept as bytes until read)",
      replay: `applying the ${tail} entries of the log tail`,
      open: 'RaftNodeDriver.open: all of the above the driver does',
    };
    printTable(`restart phases, ${keys} keys + ${tasks} tasks (median of ${runs}, each in a fresh process)`, phases.map((p) => ({ phase: p, 'CPU ms': results[p]!.cpuMs, 'wall ms': results[p]!.wallMs, what: what[p] })));
    const held = `${keys / 1000}k keys + ${tasks / 1000}k tasks`;
    const summary: SummaryRow[] = [
      { metric: `follower restart: driver open CPU, ${held}`, unit: 'ms', value: results.open!.cpuMs, better: 'lower', note: `read ${results.read!.cpuMs}, restore ${results.prepare!.cpuMs} (decode alone ${results.unpack!.cpuMs}), replay ${results.replay!.cpuMs}` },
    ];
    printResult('restart', { keys, tasks, tail, runs, snapshotBytes: written.snapshotBytes, phases: results }, summary);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
