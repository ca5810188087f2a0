// Properties over generated fault schedules: fast-check draws timed fault events (partitions, isolation, one-way
// cuts, crashes, restarts, network rates, proposal bursts, membership changes) and a snapshot policy, runs them in
// the simulator with every checker on, and shrinks a failure to a minimal schedule whose replay command is in the
// error.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import type { SnapshotPolicy, SnapshotTransfer } from './cluster.js';
import { reliableNetwork, type NetworkFaults } from './network.js';
import { runSimulation } from './run.js';
import type { FaultEvent, NodeRef, Schedule } from './schedule.js';

const steps = 80;
const fcSeed = Number(process.env.SIM_PROPERTY_SEED ?? 20261123);
const numRuns = Number(process.env.SIM_PROPERTY_RUNS ?? 60);

const at = fc.integer({ min: 0, max: steps - 1 });
const node = fc.integer({ min: 0, max: 6 });
const nodeRef: fc.Arbitrary<NodeRef> = fc.oneof(node, fc.constant('leader' as const));
const rate = fc.constantFrom(0, 0.02, 0.1, 0.25);

const partition: fc.Arbitrary<FaultEvent> = fc
  .record({ at, assignment: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 7, maxLength: 7 }) })
  .map(({ at, assignment }) => ({ at, kind: 'partition', groups: [0, 1, 2].map((g) => assignment.flatMap((a, i) => (a === g ? [i] : []))) }));
const isolate: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('isolate' as const), node: nodeRef });
const cut: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('cut' as const), from: nodeRef, to: nodeRef });
const heal: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('heal' as const) });
const crash: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('crash' as const), node: nodeRef });
const restart: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('restart' as const), node: fc.oneof(node, fc.constant('all' as const)) });
const network: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('network' as const), dropRate: rate, dupRate: rate, reorderRate: rate });
const burst: fc.Arbitrary<FaultEvent> = fc.record({ at, kind: fc.constant('burst' as const), count: fc.integer({ min: 1, max: 10 }) });
const member: fc.Arbitrary<FaultEvent> = fc.record({
  at,
  kind: fc.constant('member' as const),
  op: fc.constantFrom('grow' as const, 'promote' as const, 'remove' as const),
  node: nodeRef,
});

const snapshots: fc.Arbitrary<SnapshotPolicy | null> = fc.constantFrom(null, { everyEntries: 3, retainEntries: 0 }, { everyEntries: 12, retainEntries: 4 });
const snapshotTransfer: fc.Arbitrary<Partial<SnapshotTransfer>> = fc.record({
  delayUnitsMin: fc.constant(20),
  delayUnitsMax: fc.integer({ min: 20, max: 500 }),
  dropRate: fc.constantFrom(0, 0.2, 0.5),
});

const reliable: fc.Arbitrary<NetworkFaults> = fc.constant(reliableNetwork);
const lossy: fc.Arbitrary<NetworkFaults> = fc.record({
  dropRate: rate,
  dupRate: rate,
  reorderRate: rate,
  delayUnitsMin: fc.constant(1),
  delayUnitsMax: fc.integer({ min: 1, max: 200 }),
  reorderDelayUnitsMax: fc.integer({ min: 1, max: 1000 }),
});

function schedules(events: fc.Arbitrary<FaultEvent>, net: fc.Arbitrary<NetworkFaults>): fc.Arbitrary<{ seed: number; nodes: number; schedule: Schedule }> {
  return fc.record({
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
    nodes: fc.constantFrom(3, 5),
    schedule: fc.record({
      network: net,
      events: fc.array(events, { maxLength: 24 }),
      clients: fc.integer({ min: 1, max: 4 }),
      diskLatencyUnitsMax: fc.constantFrom(0, 20, 100),
      spares: fc.constantFrom(0, 2),
      snapshots,
      snapshotTransfer,
    }),
  });
}

/** Runs the schedule with every checker on; a SimulationFailure carries the replay command of this very schedule. */
async function holds({ seed, nodes, schedule }: { seed: number; nodes: number; schedule: Schedule }): Promise<void> {
  await runSimulation({ seed, steps, nodes, schedule });
}

const params = { seed: fcSeed, numRuns, includeErrorInReport: true };

describe('fault schedules (fast-check)', () => {
  it('whatever partitions, isolations and one-way cuts come and go, every safety invariant holds and the cluster converges once healed', async () => {
    await fc.assert(fc.asyncProperty(schedules(fc.oneof(partition, isolate, cut, heal, burst), reliable), holds), params);
  });

  it('whatever nodes crash and restart, nothing committed is lost, restarts never go below what was applied, and acknowledged commands apply exactly once', async () => {
    await fc.assert(fc.asyncProperty(schedules(fc.oneof(crash, crash, restart, burst), reliable), holds), params);
  });

  it('on a network that drops, duplicates, delays and reorders, with any mix of faults, every invariant holds', async () => {
    await fc.assert(fc.asyncProperty(schedules(fc.oneof(partition, isolate, cut, heal, crash, restart, network, burst), lossy), holds), params);
  });

  it('whatever members are added, promoted and removed (the leader too) amid crashes, partitions, loss and snapshots, no two leaders share a term, a removed node never leads again, snapshots hold the state of their index, and the cluster converges', async () => {
    const withChanges = fc.oneof(member, member, member, partition, isolate, crash, restart, heal, network, burst);
    await fc.assert(fc.asyncProperty(schedules(withChanges, lossy), holds), params);
  });

  it('when the leader itself is repeatedly crashed or cut off, a new leader never loses a committed entry', async () => {
    const leaderFaults = fc.oneof(
      fc.record({ at, kind: fc.constant('crash' as const), node: fc.constant('leader' as const) }),
      fc.record({ at, kind: fc.constant('isolate' as const), node: fc.constant('leader' as const) }),
      restart,
      heal,
      burst,
    );
    await fc.assert(fc.asyncProperty(schedules(leaderFaults, lossy), holds), params);
  });
});
