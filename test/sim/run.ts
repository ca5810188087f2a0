// One simulated run = (seed, steps, nodes, profile or explicit schedule): a fault phase of `steps` ticks under load,
// then a liveness phase (heal, restart, reliable network) that must converge within a bound. Any failure throws a
// SimulationFailure whose message carries the seed and the command that replays the run.
import type { NodeId } from '../../src/lib/ids.js';
import { SeededRandom } from '../../src/lib/random.js';
import type { ConfChange } from '../../src/raft/types.js';
import { SafetyViolation } from './checkers.js';
import { SimCluster, type ClusterOptions } from './cluster.js';
import { reliableNetwork } from './network.js';
import { generateSchedule, profileForSeed, type FaultEvent, type NodeRef, type ProfileName, type Schedule } from './schedule.js';
import type { TraceSink } from './trace.js';
import { Workload } from './workload.js';

export interface RunOptions {
  seed: number;
  /** Ticks of the fault phase. */
  steps: number;
  nodes: number;
  /** A named profile, or 'random' (the default) to let the seed pick one. Ignored when `schedule` is given. */
  profile?: ProfileName | 'random';
  /** An explicit schedule (property tests); replaces the profile. */
  schedule?: Schedule;
  /** Ticks the cluster gets to converge after the faults end. */
  livenessTicksMax?: number;
  trace?: TraceSink | null;
  /** Overrides for the cluster (a broken core, another state machine, raft params); the seed stays the run's. */
  cluster?: Partial<Omit<ClusterOptions, 'seed' | 'nodes' | 'trace'>>;
}

export interface RunResult {
  seed: number;
  steps: number;
  nodes: number;
  profile: ProfileName | 'schedule';
  /** Ticks the liveness phase took to converge. */
  livenessTicks: number;
  term: number;
  commitIndex: number;
  acked: number;
  /** Linearizable reads started (each checked against the acknowledged writes when it completed). */
  reads: number;
  messages: number;
  crashes: number;
  /** Storage faults applied (damaged nodes all came back as voters). */
  storageFaults: number;
  snapshotsInstalled: number;
  confChanges: number;
  /** The configuration the run ended with. */
  voters: number;
  learners: number;
}

export const livenessTicksDefault = 400;

export class SimulationFailure extends Error {
  override readonly name = 'SimulationFailure';
  constructor(
    message: string,
    readonly seed: number,
    readonly replay: string,
    readonly invariant: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** The command that replays a run exactly. */
export function replayCommand(o: Pick<RunOptions, 'seed' | 'steps' | 'nodes' | 'profile' | 'schedule'>): string {
  let cmd = `npm run sim -- --seed ${o.seed} --steps ${o.steps} --nodes ${o.nodes}`;
  if (o.schedule !== undefined) cmd += ` --schedule '${JSON.stringify(o.schedule)}'`;
  else if (o.profile !== undefined && o.profile !== 'random') cmd += ` --profile ${o.profile}`;
  return cmd;
}

/** The profile and schedule a run uses: drawn from a stream of the seed that the cluster does not use. */
export function planRun(o: RunOptions): { profile: ProfileName | 'schedule'; schedule: Schedule } {
  if (o.schedule !== undefined) return { profile: 'schedule', schedule: o.schedule };
  const random = new SeededRandom((o.seed ^ 0x5bd1e995) >>> 0);
  const profile = o.profile === undefined || o.profile === 'random' ? profileForSeed(random) : o.profile;
  return { profile, schedule: generateSchedule(profile, random, o.nodes, o.steps) };
}

export async function runSimulation(o: RunOptions): Promise<RunResult> {
  const { profile, schedule } = planRun(o);
  let cluster: SimCluster | null = null;
  let phase = 'setup';
  try {
    cluster = new SimCluster({
      diskLatencyUnitsMin: 0,
      diskLatencyUnitsMax: schedule.diskLatencyUnitsMax,
      network: schedule.network,
      spares: schedule.spares ?? 0,
      snapshots: schedule.snapshots ?? null,
      ...(schedule.snapshotTransfer === undefined ? {} : { snapshotTransfer: schedule.snapshotTransfer }),
      ...o.cluster,
      raft: { ...schedule.raft, ...o.cluster?.raft },
      seed: o.seed,
      nodes: o.nodes,
      trace: o.trace ?? null,
    });
    const c = cluster;
    const workload = new Workload(c, c.forkRandom(), { clients: schedule.clients });
    const events = [...schedule.events].sort((a, b) => a.at - b.at);
    let next = 0;
    let crashes = 0;
    let faultsOn = true;
    c.onClock((tick) => {
      for (; faultsOn && next < events.length && events[next]!.at <= tick; next++) {
        if (applyFault(c, workload, events[next]!)) crashes++;
      }
    });
    phase = 'fault phase';
    await c.runTicks(o.steps);
    phase = 'liveness phase';
    faultsOn = false;
    const livenessTicks = await heal(c, workload, o.livenessTicksMax ?? livenessTicksDefault);
    phase = 'final check';
    workload.verifyExactlyOnce(c.memberNodes());
    verifyDigests(c);
    const leader = c.status(c.leader()!)!;
    return {
      seed: o.seed,
      steps: o.steps,
      nodes: o.nodes,
      profile,
      livenessTicks,
      term: leader.term,
      commitIndex: leader.commitIndex,
      acked: workload.stats.acked,
      reads: workload.stats.reads,
      messages: c.stats.sentTotal,
      crashes,
      storageFaults: c.stats.storageFaults,
      snapshotsInstalled: c.stats.snapshotsInstalled,
      confChanges: c.stats.confChanges,
      voters: leader.voters.length,
      learners: leader.learners.length,
    };
  } catch (err) {
    throw failure(o, profile, phase, cluster, err);
  }
}

function failure(o: RunOptions, profile: string, phase: string, cluster: SimCluster | null, err: unknown): SimulationFailure {
  const replay = replayCommand(o);
  const invariant = err instanceof SafetyViolation ? err.invariant : 'crash';
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const where = cluster === null ? phase : `${phase}, tick ${cluster.tick}, time ${cluster.now}`;
  const message = `simulation failed (seed ${o.seed}, ${o.nodes} nodes, ${o.steps} steps, profile ${profile}) in the ${where}: ${what}\n  replay: ${replay} --trace`;
  return new SimulationFailure(message, o.seed, replay, invariant, { cause: err });
}

function resolve(c: SimCluster, ref: NodeRef): number | null {
  if (ref !== 'leader') return ((ref % c.nodes.length) + c.nodes.length) % c.nodes.length;
  const leader = c.leader();
  return leader === null ? null : c.index(leader);
}

/** Applies one fault event; returns true when it crashed a node. */
export function applyFault(c: SimCluster, workload: Workload, e: FaultEvent): boolean {
  const n = c.nodes.length;
  switch (e.kind) {
    case 'partition':
      c.partition(e.groups.map((g) => g.map((i) => i % n)));
      return false;
    case 'isolate': {
      const i = resolve(c, e.node);
      if (i !== null) c.isolate(i);
      return false;
    }
    case 'cut': {
      const from = resolve(c, e.from);
      const to = resolve(c, e.to);
      if (from !== null && to !== null && from !== to) c.cutOneWay(from, to);
      return false;
    }
    case 'heal':
      c.heal();
      return false;
    case 'crash': {
      const i = resolve(c, e.node);
      if (i === null || !c.nodes[i]!.up) return false;
      c.crash(i);
      return true;
    }
    case 'restart':
      if (e.node === 'all') for (let i = 0; i < n; i++) c.restart(i);
      else c.restart(resolve(c, e.node)!);
      return false;
    case 'network':
      c.setNetwork({ dropRate: e.dropRate, dupRate: e.dupRate, reorderRate: e.reorderRate });
      return false;
    case 'burst':
      workload.burst(e.count);
      return false;
    case 'member':
      changeMembership(c, e);
      return false;
    case 'damage': {
      const i = resolve(c, e.node);
      return i !== null && c.damage(i, e.fault);
    }
  }
}

/**
 * The operator: one change through the current leader, its target picked among the candidates the leader's
 * configuration allows (a refused change, say while another is in progress, is simply dropped).
 */
function changeMembership(c: SimCluster, e: Extract<FaultEvent, { kind: 'member' }>): void {
  const leader = c.leader();
  if (leader === null) return;
  const st = c.status(leader)!;
  const hint = e.node === 'leader' ? 0 : e.node;
  const choose = (ids: readonly NodeId[]): NodeId | null => (ids.length === 0 ? null : ids[hint % ids.length]!);
  let change: ConfChange | null = null;
  switch (e.op) {
    case 'grow': {
      // A removed id is never added again: its old state (votes, terms) would be a new member's (see types.ts).
      const id = choose(c.ids.filter((x) => !c.everMember.has(x)));
      if (id !== null) change = { type: 'addLearner', nodeId: id };
      break;
    }
    case 'promote': {
      const id = choose(st.learners);
      if (id !== null) change = { type: 'promote', nodeId: id };
      break;
    }
    case 'remove': {
      // Keep two voters at least: a run that shrinks to one voter tests little of what a change can break.
      const id = e.node === 'leader' ? leader : choose([...st.voters, ...st.learners]);
      if (id !== null && (st.learners.includes(id) || st.voters.length > 2)) change = { type: 'remove', nodeId: id };
      break;
    }
  }
  if (change !== null) c.proposeConfChange(leader, change);
}

/** Heals everything and waits for a leader, every pending command acknowledged, and every node applied up to the
 * leader's last index. Returns the ticks it took; throws a liveness violation past the bound. */
async function heal(c: SimCluster, workload: Workload, ticksMax: number): Promise<number> {
  workload.active = false;
  c.heal();
  c.setNetwork({ ...reliableNetwork });
  for (let i = 0; i < c.nodes.length; i++) c.restart(i);
  const start = c.tick;
  let converged = false;
  c.onClock(() => {
    converged = converged || isConverged(c, workload);
  });
  if (!(await c.runUntil(() => converged, ticksMax))) {
    const leader = c.leader();
    const conf = c.config();
    const applied = c.nodes.map((nd) => `${nd.id}:${nd.applied}/${nd.core?.status().commitIndex ?? '-'}`).join(' ');
    const members = conf === null ? '' : `, voters ${conf.voters.join(',')} learners ${conf.learners.join(',') || '-'}`;
    const damaged = c.nodes.filter((nd) => nd.damaged).map((nd) => `${nd.id} (${nd.core?.status().recovering === null ? 'starting' : 'recovering'})`);
    throw new SafetyViolation(
      'liveness',
      `no convergence ${ticksMax} ticks after healing: leader ${leader ?? 'none'}${members}, ${workload.pendingCount()} commands pending, applied/commit ${applied}${damaged.length > 0 ? `, storage not repaired on ${damaged.join(', ')}` : ''}`,
    );
  }
  return c.tick - start;
}

function isConverged(c: SimCluster, workload: Workload): boolean {
  if (workload.pendingCount() > 0) return false;
  const id = c.leader();
  if (id === null) return false;
  const st = c.status(id)!;
  if (st.commitIndex !== st.lastIndex) return false;
  // Every node a storage fault hit is a voter again (its storage repaired from the others).
  if (c.nodes.some((nd) => nd.damaged)) return false;
  // Nodes outside the configuration (removed, or spares never added) are not expected to follow.
  return c.nodes.every((nd) => (!st.voters.includes(nd.id) && !st.learners.includes(nd.id)) || (nd.up && nd.applied === st.commitIndex));
}

/** Nodes that applied the same prefix hold the same state. */
function verifyDigests(c: SimCluster): void {
  const first = c.nodes[0]!;
  for (const nd of c.nodes) {
    if (nd.applied === first.applied && nd.sm.digest() !== first.sm.digest()) {
      throw new SafetyViolation('state machine safety', `${nd.id} and ${first.id} applied up to ${nd.applied} but their states differ`);
    }
  }
}
