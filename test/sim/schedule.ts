// Fault schedules: timed fault events (partitions, isolation, one-way cuts, crashes, restarts, network rates,
// proposal bursts, membership changes) and the named profiles that draw a random schedule from a seed, with the
// snapshot policy of the run.
import type { Random } from '../../src/lib/random.js';
import type { SnapshotPolicy, SnapshotTransfer } from './cluster.js';
import type { NetworkFaults } from './network.js';
import { reliableNetwork } from './network.js';

/** A node by index (taken modulo the cluster size, so generated schedules fit any size) or the current leader. */
export type NodeRef = number | 'leader';

export type FaultEvent =
  | { readonly at: number; readonly kind: 'partition'; readonly groups: readonly (readonly number[])[] }
  | { readonly at: number; readonly kind: 'isolate'; readonly node: NodeRef }
  | { readonly at: number; readonly kind: 'cut'; readonly from: NodeRef; readonly to: NodeRef }
  | { readonly at: number; readonly kind: 'heal' }
  | { readonly at: number; readonly kind: 'crash'; readonly node: NodeRef }
  | { readonly at: number; readonly kind: 'restart'; readonly node: number | 'all' }
  | { readonly at: number; readonly kind: 'network'; readonly dropRate: number; readonly dupRate: number; readonly reorderRate: number }
  | { readonly at: number; readonly kind: 'burst'; readonly count: number }
  /**
   * An operator's membership change through the leader: 'grow' adds a node that was never a member as a learner,
   * 'promote' a learner, 'remove' a member (the leader when node is 'leader'); node picks among the candidates.
   */
  | { readonly at: number; readonly kind: 'member'; readonly op: MemberOp; readonly node: NodeRef }
  /**
   * A storage fault on synced data (TigerBeetle's VOPR): the node crashes and its disk comes back with one entry's bit
   * flipped, its log's tail cut, a range of entries gone, or the whole data directory replaced by an older copy.
   * Never on more voters at once than a minority (the cluster drops a fault that would pass that).
   */
  | { readonly at: number; readonly kind: 'damage'; readonly node: NodeRef; readonly fault: StorageFault };

export type MemberOp = 'grow' | 'promote' | 'remove';
export type StorageFault = 'flip' | 'tail' | 'range' | 'stale';

/** The flow-control limits a schedule may shrink: small appends and windows split logs across many messages, which
 * is where commit-by-counting (Figure 8) and commit-past-the-verified-prefix bugs live. */
export interface ScheduleLimits {
  readonly entriesPerAppendMax?: number;
  readonly inflightAppendsMax?: number;
}

/** Everything a run's fault phase does, besides the seed: the network it starts with, the events, the load. */
export interface Schedule {
  readonly network: NetworkFaults;
  readonly events: readonly FaultEvent[];
  readonly clients: number;
  readonly diskLatencyUnitsMax: number;
  readonly raft?: ScheduleLimits;
  /** Nodes outside the configuration at the start, for 'grow' to add (nodes + spares <= 9). */
  readonly spares?: number;
  readonly snapshots?: SnapshotPolicy | null;
  readonly snapshotTransfer?: Partial<SnapshotTransfer>;
}

/** 'storage' is never drawn by a seed (it would change every seed's run); the soak asks for it by name. */
export const profileNames = ['calm', 'lossy', 'partitions', 'crashes', 'figure8', 'chaos', 'membership', 'storage'] as const;
export type ProfileName = (typeof profileNames)[number];

export function isProfileName(s: string): s is ProfileName {
  return (profileNames as readonly string[]).includes(s);
}

/** The profile a seed picks when none is named: mostly the ones with faults. */
export function profileForSeed(random: Random): ProfileName {
  const weighted: ProfileName[] = [
    'calm',
    'lossy',
    'lossy',
    'partitions',
    'partitions',
    'crashes',
    'crashes',
    'figure8',
    'chaos',
    'chaos',
    'chaos',
    'membership',
    'membership',
    'membership',
  ];
  return weighted[random.int(weighted.length)]!;
}

const pick = (random: Random, lo: number, hi: number): number => lo + random.int(hi - lo + 1);
const chance = (random: Random, p: number): boolean => random.next() < p;

function lossyNetwork(random: Random): NetworkFaults {
  return {
    dropRate: [0.02, 0.05, 0.1, 0.2, 0.3][random.int(5)]!,
    dupRate: [0, 0.02, 0.1][random.int(3)]!,
    reorderRate: [0, 0.05, 0.2][random.int(3)]!,
    delayUnitsMin: 1,
    delayUnitsMax: pick(random, 10, 150),
    reorderDelayUnitsMax: pick(random, 100, 1000),
  };
}

function randomGroups(random: Random, nodes: number): number[][] {
  const groupCount = pick(random, 2, Math.min(3, nodes));
  const groups: number[][] = Array.from({ length: groupCount }, () => []);
  for (let i = 0; i < nodes; i++) groups[random.int(groupCount)]!.push(i);
  return groups.filter((g) => g.length > 0);
}

function partitionEvent(random: Random, at: number, nodes: number): FaultEvent {
  switch (random.int(5)) {
    case 0:
      return { at, kind: 'partition', groups: randomGroups(random, nodes) };
    case 1:
      return { at, kind: 'isolate', node: chance(random, 0.5) ? 'leader' : random.int(nodes) };
    case 2: {
      const from = chance(random, 0.4) ? 'leader' : random.int(nodes);
      return { at, kind: 'cut', from, to: random.int(nodes) };
    }
    default:
      return { at, kind: 'heal' };
  }
}

function crashEvent(random: Random, at: number, nodes: number, leaderBias: number): FaultEvent {
  if (chance(random, 0.45)) return { at, kind: 'restart', node: chance(random, 0.15) ? 'all' : random.int(nodes) };
  return { at, kind: 'crash', node: chance(random, leaderBias) ? 'leader' : random.int(nodes) };
}

/** Events at random gaps of [gapMin, gapMax] ticks through the fault phase. */
function eventsEvery(random: Random, steps: number, gapMin: number, gapMax: number, make: (at: number) => FaultEvent): FaultEvent[] {
  const out: FaultEvent[] = [];
  for (let at = pick(random, 1, gapMax); at < steps; at += pick(random, gapMin, gapMax)) out.push(make(at));
  return out;
}

function bursts(random: Random, steps: number): FaultEvent[] {
  return eventsEvery(random, steps, 20, 80, (at) => ({ at, kind: 'burst', count: pick(random, 1, 12) }));
}

function memberEvent(random: Random, at: number): FaultEvent {
  const r = random.int(10);
  const op: MemberOp = r < 4 ? 'grow' : r < 7 ? 'promote' : 'remove';
  return { at, kind: 'member', op, node: op === 'remove' && chance(random, 0.3) ? 'leader' : random.int(9) };
}

/** Snapshots from often (every few entries, the whole log compacted) to never; streams slow and sometimes lost. */
function snapshotSettings(random: Random): Pick<Schedule, 'snapshots' | 'snapshotTransfer'> {
  const policies: (SnapshotPolicy | null)[] = [null, { everyEntries: 4, retainEntries: 0 }, { everyEntries: 15, retainEntries: 3 }, { everyEntries: 40, retainEntries: 10 }];
  const snapshots = policies[random.int(policies.length)]!;
  const snapshotTransfer: Partial<SnapshotTransfer> = { delayUnitsMin: 20, delayUnitsMax: pick(random, 50, 600), dropRate: [0, 0.1, 0.3][random.int(3)]! };
  return { snapshots, snapshotTransfer };
}

/** A random schedule of the named profile for `nodes` nodes and `steps` ticks of faults. */
export function generateSchedule(profile: ProfileName, random: Random, nodes: number, steps: number): Schedule {
  const schedule = profileSchedule(profile, random, nodes, steps);
  // Drawn after the profile's own draws, so adding them did not change the schedules the profiles drew before.
  const extras = snapshotSettings(random);
  if (profile !== 'chaos' && profile !== 'membership') return { ...schedule, ...extras };
  const spares = Math.min(2, 9 - nodes);
  const members = eventsEvery(random, steps, profile === 'membership' ? 4 : 10, profile === 'membership' ? 20 : 50, (at) => memberEvent(random, at));
  return { ...schedule, ...extras, spares, events: [...schedule.events, ...members] };
}

function profileSchedule(profile: ProfileName, random: Random, nodes: number, steps: number): Schedule {
  const clients = pick(random, 1, 5);
  const diskLatencyUnitsMax = [0, 20, 50, 150][random.int(4)]!;
  const raft: ScheduleLimits = {
    entriesPerAppendMax: [1, 2, 3, 1024, 1024][random.int(5)]!,
    inflightAppendsMax: [1, 2, 256, 256][random.int(4)]!,
  };
  const base = { clients, diskLatencyUnitsMax, raft };
  switch (profile) {
    case 'calm':
      return { ...base, network: { ...reliableNetwork, delayUnitsMax: pick(random, 1, 60) }, events: bursts(random, steps) };
    case 'lossy':
      return { ...base, network: lossyNetwork(random), events: bursts(random, steps) };
    case 'partitions':
      return { ...base, network: reliableNetwork, events: [...eventsEvery(random, steps, 5, 40, (at) => partitionEvent(random, at, nodes)), ...bursts(random, steps)] };
    case 'crashes':
      return { ...base, network: reliableNetwork, events: [...eventsEvery(random, steps, 5, 40, (at) => crashEvent(random, at, nodes, 0.3)), ...bursts(random, steps)] };
    case 'figure8':
      // Leaders crash often and come back, on an unreliable network: old-term entries float around uncommitted.
      return { ...base, network: lossyNetwork(random), events: eventsEvery(random, steps, 3, 25, (at) => crashEvent(random, at, nodes, 0.8)) };
    case 'chaos': {
      const events = eventsEvery(random, steps, 3, 30, (at) => {
        const r = random.int(10);
        if (r < 4) return partitionEvent(random, at, nodes);
        if (r < 8) return crashEvent(random, at, nodes, 0.4);
        if (r < 9) return { at, kind: 'network', dropRate: [0, 0.05, 0.2][random.int(3)]!, dupRate: [0, 0.05][random.int(2)]!, reorderRate: [0, 0.1][random.int(2)]! };
        return { at, kind: 'burst', count: pick(random, 1, 12) };
      });
      return { ...base, network: lossyNetwork(random), events };
    }
    case 'storage': {
      // Crashes, restarts and storage faults on the nodes' synced data, on a network that may lose messages.
      const faults: StorageFault[] = ['flip', 'tail', 'range', 'stale'];
      const events = eventsEvery(random, steps, 4, 25, (at) => {
        if (chance(random, 0.4)) return { at, kind: 'damage', node: chance(random, 0.3) ? 'leader' : random.int(nodes), fault: faults[random.int(faults.length)]! };
        if (chance(random, 0.6)) return { at, kind: 'restart', node: random.int(nodes) };
        return crashEvent(random, at, nodes, 0.3);
      });
      return { ...base, network: chance(random, 0.5) ? reliableNetwork : lossyNetwork(random), events: [...events, ...bursts(random, steps)] };
    }
    case 'membership': {
      // Changes come from the extras; faults come less often than in chaos, so that changes get to commit.
      const events = eventsEvery(random, steps, 8, 40, (at) => (chance(random, 0.5) ? partitionEvent(random, at, nodes) : crashEvent(random, at, nodes, 0.4)));
      return { ...base, network: chance(random, 0.5) ? reliableNetwork : lossyNetwork(random), events: [...events, ...bursts(random, steps)] };
    }
  }
}
