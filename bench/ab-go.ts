// A/B of two builds of Minkube with the Go load generator (bench/go-loadgen.ts): the before/after pair a change's
// claim needs, from one run. Each round starts a fresh 3-manager cluster per side (which side goes first alternates
// between rounds), runs KV writes at every level through its leader and reads each manager's CPU from /proc; the
// table gives per-level medians: writes/s, B/A, p99, and the CPU per write of the leader and of a follower (mean of
// the two), in ms.
// Side A is another checkout's build (`--vs DIR`: DIR/bin/minkube.js; `--vs .` this one), side B this checkout's;
// both need `npm run build` first. Flags per side: `--args-a/--args-b "node flags"`, `--extra-a/--extra-b JSON`
// (merged into the cluster config, e.g. '{"raft":{"snapshotThresholdEntries":100000}}'), `--env-b "K=V ..."`.
// `--op get`: linearizable reads of one key instead of writes (the CPU columns are then per read).
// `npx tsx bench/ab-go.ts --vs DIR [--rounds 3] [--levels 1,16,64,256] [--seconds 5] [--warmup 2] [--secure] [--h2] [--op put|get]`
import { join, resolve } from 'node:path';
import { repoRoot } from '../test/support/cluster.js';
import { buildLoadgen, loadgen, minkubeSide } from './go-loadgen.js';
import { median } from './summary.js';
import { arg, cpuMsOf, flag, printTable, round } from './support.js';

/** One side of the A/B: a build and how its nodes are launched. */
interface Build {
  name: 'A' | 'B';
  bin: string;
  nodeArgs: string[];
  extra: Record<string, unknown>;
  env: [string, string][];
}

interface Sample {
  opsPerSec: number;
  p99Ms: number;
  leaderCpuMs: number;
  followerCpuMs: number;
}

const words = (s: string): string[] => s.split(' ').filter(Boolean);

async function runSide(side: Build, levels: number[], o: { seconds: string; warmup: string; secure: boolean; h2: boolean; op: string }): Promise<Map<number, Sample>> {
  const saved = new Map(side.env.map(([k]) => [k, process.env[k]]));
  for (const [k, v] of side.env) process.env[k] = v;
  try {
    const cluster = await minkubeSide(o.secure ? 'secure' : 'insecure', { bin: side.bin, nodeArgs: side.nodeArgs, extra: side.extra });
    try {
      return measure(cluster.args, cluster.pids(), cluster.leaderPid, side.name, levels, o);
    } finally {
      await cluster.cleanup();
    }
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function measure(clusterArgs: string[], pids: number[], leaderPid: number, name: Build['name'], levels: number[], o: { seconds: string; warmup: string; h2: boolean; op: string }): Map<number, Sample> {
  const args = [...clusterArgs, ...(o.h2 ? ['-h2'] : [])];
  const li = pids.indexOf(leaderPid);
  const out = new Map<number, Sample>();
  for (const clients of levels) {
    const before = pids.map(cpuMsOf);
    const r = loadgen([...args, '-op', o.op, '-clients', String(clients), '-seconds', o.seconds, '-warmup', o.warmup]);
    const spent = pids.map((pid, i) => cpuMsOf(pid) - before[i]!);
    // The CPU read covers the warm-up too: divide by the writes of both.
    const writes = r.opsPerSec * (Number(o.seconds) + Number(o.warmup));
    const followers = spent.filter((_, i) => i !== li);
    const s: Sample = { opsPerSec: r.opsPerSec, p99Ms: r.p99Ms, leaderCpuMs: spent[li]! / writes, followerCpuMs: (followers[0]! + followers[1]!) / 2 / writes };
    console.log(`${name} ${clients} clients: ${Math.round(s.opsPerSec)}/s p99 ${s.p99Ms} ms, CPU per write leader ${s.leaderCpuMs.toFixed(3)} follower ${s.followerCpuMs.toFixed(3)} ms`);
    out.set(clients, s);
  }
  return out;
}

async function main(): Promise<void> {
  process.env.MINKUBE_FROM_SOURCE = '0';
  const vs = arg('vs', '');
  if (vs === '') throw new Error('--vs DIR: the checkout whose build is side A (its bin/minkube.js and dist/)');
  const missing = buildLoadgen();
  if (missing !== null) throw new Error(`ab-go needs the Go load generator: ${missing}`);
  const levels = arg('levels', '1,16,64,256').split(',').map(Number);
  const rounds = Number(arg('rounds', '3'));
  const o = { seconds: arg('seconds', '5'), warmup: arg('warmup', '2'), secure: flag('secure'), h2: flag('h2'), op: arg('op', 'put') };
  if (o.op !== 'put' && o.op !== 'get') throw new Error(`--op: put or get, not ${o.op}`);
  const sides: Build[] = [
    { name: 'A', bin: join(resolve(vs), 'bin', 'minkube.js'), nodeArgs: words(arg('args-a', '')), extra: JSON.parse(arg('extra-a', '{}')) as Record<string, unknown>, env: [] },
    {
      name: 'B',
      bin: join(repoRoot, 'bin', 'minkube.js'),
      nodeArgs: words(arg('args-b', '')),
      extra: JSON.parse(arg('extra-b', '{}')) as Record<string, unknown>,
      env: words(arg('env-b', '')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    },
  ];
  const samples = { A: new Map<number, Sample[]>(), B: new Map<number, Sample[]>() };
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
      for (const [clients, s] of await runSide(side, levels, o)) samples[side.name].set(clients, [...(samples[side.name].get(clients) ?? []), s]);
    }
  }
  const unit = o.op === 'put' ? 'w/s' : 'r/s';
  const med = (name: 'A' | 'B', clients: number, key: keyof Sample): number => median(samples[name].get(clients)!.map((s) => s[key]));
  printTable(
    `A/B, ${rounds} rounds, ${o.op === 'put' ? 'writes' : 'reads'}/s medians (A: ${vs}, B: this checkout; TLS ${o.secure ? 'on' : 'off'}, HTTP/${o.h2 ? '2' : '1.1'})`,
    levels.map((clients) => ({
      clients,
      [`A ${unit}`]: round(med('A', clients, 'opsPerSec'), 0),
      [`B ${unit}`]: round(med('B', clients, 'opsPerSec'), 0),
      'B/A': round(med('B', clients, 'opsPerSec') / med('A', clients, 'opsPerSec'), 2),
      'A p99 ms': round(med('A', clients, 'p99Ms'), 1),
      'B p99 ms': round(med('B', clients, 'p99Ms'), 1),
      'A CPU leader/follower ms': `${med('A', clients, 'leaderCpuMs').toFixed(3)} / ${med('A', clients, 'followerCpuMs').toFixed(3)}`,
      'B CPU leader/follower ms': `${med('B', clients, 'leaderCpuMs').toFixed(3)} / ${med('B', clients, 'followerCpuMs').toFixed(3)}`,
    })),
  );
}

await main();
