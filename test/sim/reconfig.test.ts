// Snapshots and membership changes on the simulated cluster: a follower far behind catching up by a snapshot, a lost
// snapshot stream sent again, a crash while a snapshot is being installed, a learner joining and being promoted,
// growing 3 -> 5 and shrinking 5 -> 3 under load and loss, removing the leader (with and without a transfer, and while clients write), and a
// removed node that never learns it. The safety checkers run after every event of every test.
import { describe, expect, it } from 'vitest';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { SimCluster } from './cluster.js';
import { changeMembers, cmd, electLeader, newCluster, one, waitCaughtUp } from './helpers.js';
import { runSimulation } from './run.js';
import { Workload } from './workload.js';

const others = (c: SimCluster, ...not: NodeId[]): NodeId[] => c.bootstrap.voters.filter((id) => !not.includes(id));
const ids = (...xs: string[]): NodeId[] => xs.map(nodeId);

/** Stops the clients, waits until every command is acknowledged and every member applied the commit index, and checks each applied once. */
async function settleWrites(c: SimCluster, workload: Workload): Promise<void> {
  workload.active = false;
  const converged = (): boolean => {
    const leader = c.leader();
    const commit = leader === null ? -1 : c.status(leader)!.commitIndex;
    return workload.pendingCount() === 0 && c.memberNodes().every((n) => n.applied === commit);
  };
  expect(await c.runUntil(converged, 300)).toBe(true);
  workload.verifyExactlyOnce(c.memberNodes());
}

describe('snapshots', () => {
  it('a follower far behind catches up by a snapshot, then by appends, with the same state as the others', async () => {
    const { c, log } = newCluster(3, 901, { snapshots: { everyEntries: 10, retainEntries: 2 } });
    const leader = await electLeader(c);
    const lagging = others(c, leader)[0]!;
    c.isolate(lagging);
    for (let i = 0; i < 60; i++) await one(c, log, cmd(), 2);
    expect(c.status(leader)!.firstIndex).toBeGreaterThan(c.status(lagging)!.lastIndex + 1);
    c.heal();
    const last = await one(c, log, cmd(), 2);
    expect(await c.runUntil(() => c.nodes.every((n) => n.applied >= last), 100)).toBe(true);
    expect(c.stats.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(c.status(lagging)!.snapshot).not.toBeNull();
    expect(c.node(lagging).sm.digest()).toBe(c.node(leader).sm.digest());
    // After a restart it loads its snapshot and the log after it, and still agrees.
    c.crash(lagging);
    c.restart(lagging);
    const after = await one(c, log, cmd(), 3);
    expect(await c.runUntil(() => c.node(lagging).applied >= after, 50)).toBe(true);
  });

  it('a lost snapshot stream is reported as failed, and the leader sends it again', async () => {
    const { c, log } = newCluster(3, 902, { snapshots: { everyEntries: 10, retainEntries: 0 }, snapshotTransfer: { dropRate: 1 } });
    const leader = await electLeader(c);
    const lagging = others(c, leader)[0]!;
    c.isolate(lagging);
    for (let i = 0; i < 40; i++) await one(c, log, cmd(), 2);
    c.heal();
    const last = await one(c, log, cmd(), 2);
    await c.runTicks(60);
    expect(c.stats.snapshotsFailed).toBeGreaterThanOrEqual(2);
    expect(c.stats.snapshotsInstalled).toBe(0);
    expect(c.node(lagging).applied).toBeLessThan(last);
    c.snapshotTransfer = { ...c.snapshotTransfer, dropRate: 0 };
    expect(await c.runUntil(() => c.node(lagging).applied >= last, 100)).toBe(true);
    expect(c.stats.snapshotsInstalled).toBe(1);
  });

  it('a follower that crashes while writing a snapshot gets it again after its restart', async () => {
    const { c, log } = newCluster(3, 903, { snapshots: { everyEntries: 10, retainEntries: 0 } });
    const leader = await electLeader(c);
    const lagging = others(c, leader)[0]!;
    c.isolate(lagging);
    for (let i = 0; i < 30; i++) await one(c, log, cmd(), 2);
    // Its disk is slow: the Ready that installs the snapshot is still being written when it crashes.
    c.node(lagging).diskLatencyUnits = [5000, 5000];
    c.heal();
    expect(await c.runUntil(() => c.stats.snapshotsDelivered === 1, 100)).toBe(true);
    await c.runTicks(1);
    expect(c.node(lagging).disk.hasPendingWrite()).toBe(true);
    c.crash(lagging);
    // A write whose fsync had not completed may still have reached the platter (the crash keeps a random prefix of
    // the unsynced writes): then the node restarts from it, else the leader sends the snapshot again.
    const kept = c.node(lagging).disk.snapshot !== null;
    c.node(lagging).diskLatencyUnits = null;
    c.restart(lagging);
    const last = await one(c, log, cmd(), 3);
    expect(c.node(lagging).applied).toBeGreaterThanOrEqual(last);
    expect(c.stats.snapshotsInstalled).toBe(kept ? 0 : 1);
    expect(c.stats.snapshotsDelivered).toBe(kept ? 1 : 2);
  });

  it('frequent snapshots under crashes and a lossy network keep every invariant', async () => {
    let installed = 0;
    for (const seed of [904, 905, 906]) {
      const r = await runSimulation({ seed, steps: 200, nodes: seed % 2 === 0 ? 3 : 5, profile: 'chaos', cluster: { snapshots: { everyEntries: 3, retainEntries: 0 } } });
      installed += r.snapshotsInstalled;
    }
    expect(installed).toBeGreaterThan(0);
  });
});

describe('membership', () => {
  it('a new member joins as a learner, catches up, and once promoted counts in the quorum', async () => {
    const { c, log } = newCluster(3, 911, { spares: 1 });
    await electLeader(c);
    for (let i = 0; i < 10; i++) await one(c, log, cmd(), 3);
    const n4 = nodeId('n4');
    await changeMembers(c, { type: 'addLearner', nodeId: n4 });
    await waitCaughtUp(c, n4);
    expect(c.node(n4).sm.digest()).toBe(c.node(c.leader()!).sm.digest());
    await changeMembers(c, { type: 'promote', nodeId: n4 });
    expect(c.config()).toEqual({ voters: ids('n1', 'n2', 'n3', 'n4'), learners: [] });
    // The leader and n4 are two of four voters: no quorum.
    const leader = c.leader()!;
    const [a, b] = others(c, leader, n4) as [NodeId, NodeId];
    await waitCaughtUp(c, n4);
    c.isolate(a);
    c.isolate(b);
    const before = Math.max(...c.nodes.map((n) => n.core?.status().commitIndex ?? 0));
    c.propose(leader, [cmd()]);
    await c.runTicks(30);
    expect(Math.max(...c.nodes.map((n) => n.core?.status().commitIndex ?? 0))).toBe(before);
    c.heal();
    await one(c, log, cmd(), 4);
  });

  it('grows from 3 to 5 voters and shrinks back to 3 while clients write on a lossy network', async () => {
    const c = new SimCluster({ seed: 912, nodes: 3, spares: 2, snapshots: { everyEntries: 20, retainEntries: 5 }, network: { dropRate: 0.05, delayUnitsMax: 40 } });
    const workload = new Workload(c, c.forkRandom(), { clients: 3 });
    await electLeader(c);
    await c.runTicks(30);
    for (const id of ids('n4', 'n5')) {
      await changeMembers(c, { type: 'addLearner', nodeId: id });
      await waitCaughtUp(c, id);
      await changeMembers(c, { type: 'promote', nodeId: id });
      await c.runTicks(20);
    }
    expect(c.config()).toEqual({ voters: ids('n1', 'n2', 'n3', 'n4', 'n5'), learners: [] });
    for (const id of ids('n1', 'n2')) {
      await changeMembers(c, { type: 'remove', nodeId: id });
      await c.runTicks(20);
    }
    expect(c.config()).toEqual({ voters: ids('n3', 'n4', 'n5'), learners: [] });
    await settleWrites(c, workload);
    expect(workload.stats.acked).toBeGreaterThan(20);
    expect(c.stats.confChanges).toBe(6);
  });

  it('removing the leader after transferring leadership: no election, and the old leader stays out', async () => {
    const { c, log } = newCluster(3, 913);
    const old = await electLeader(c);
    await one(c, log, cmd(), 3);
    const target = others(c, old)[0]!;
    expect(c.transferLeadership(old, target)).toBe(true);
    expect(await c.runUntil(() => c.leader() === target, 20)).toBe(true);
    await changeMembers(c, { type: 'remove', nodeId: old });
    await one(c, log, cmd(), 2);
    const t = c.status(target)!.term;
    await c.runTicks(200);
    expect(c.leader()).toBe(target);
    expect(c.status(target)!.term).toBe(t);
    expect(c.status(old)!.role).not.toBe('leader');
  });

  it('removing the leader without a transfer: it leads until the change commits, then hands over at once', async () => {
    const { c, log } = newCluster(3, 914);
    const old = await electLeader(c);
    await one(c, log, cmd(), 3);
    await c.runTicks(3);
    const r = c.proposeConfChange(old, { type: 'remove', nodeId: old });
    expect(r?.ok).toBe(true);
    // Sooner than any election timeout: the old leader's timeoutNow starts the next election.
    expect(await c.runUntil(() => c.leader() !== null && c.leader() !== old, 5)).toBe(true);
    expect(c.status(old)).toMatchObject({ role: 'follower', voters: others(c, old) });
    await one(c, log, cmd(), 2);
  });

  it('removing the leader while clients write: it appends nothing after the change, so it still hands over at once', async () => {
    const c = new SimCluster({ seed: 912, nodes: 3 });
    const workload = new Workload(c, c.forkRandom(), { clients: 4 });
    const old = await electLeader(c);
    await c.runTicks(20);
    const r = c.proposeConfChange(old, { type: 'remove', nodeId: old });
    expect(r?.ok).toBe(true);
    const index = r?.ok === true ? r.index : 0;
    // Writes kept arriving behind the change, the change committed before any voter held them, and nobody was told
    // to take over: the cluster waited out an election timeout (0.3 to 0.5 s on a real one).
    expect(await c.runUntil(() => c.leader() !== null && c.leader() !== old, 5)).toBe(true);
    expect(c.status(old)).toMatchObject({ role: 'follower', lastIndex: index });
    await settleWrites(c, workload);
  });

  it('a removed node that never hears of its removal does not disturb the cluster', async () => {
    const { c, log } = newCluster(3, 915);
    const leader = await electLeader(c);
    await one(c, log, cmd(), 3);
    const victim = others(c, leader)[0]!;
    c.isolate(victim);
    await changeMembers(c, { type: 'remove', nodeId: victim });
    await one(c, log, cmd(), 2);
    c.heal();
    const t = c.status(leader)!.term;
    await c.runTicks(300);
    expect(c.leader()).toBe(leader);
    expect(c.status(leader)!.term).toBe(t);
    expect(c.status(victim)!.voters).toContain(victim);
  });

  it('disaster recovery: the only survivor, forced into a one-voter cluster, keeps every write and grows back to three', async () => {
    const c = new SimCluster({ seed: 920, nodes: 3, spares: 2, snapshots: { everyEntries: 15, retainEntries: 0 } });
    const workload = new Workload(c, c.forkRandom(), { clients: 3 });
    const survivor = await electLeader(c);
    await c.runTicks(60);
    workload.active = false;
    await c.runTicks(40);
    // Two of three lost for good; the leader holds every committed entry.
    for (const id of others(c, survivor)) c.crash(id);
    c.crash(survivor);
    c.forceNewCluster(survivor);
    c.restart(survivor);
    expect(await c.runUntil(() => c.leader() === survivor, 50)).toBe(true);
    expect(c.config()).toEqual({ voters: [survivor], learners: [] });
    for (const id of ids('n4', 'n5')) {
      await changeMembers(c, { type: 'addLearner', nodeId: id });
      await waitCaughtUp(c, id);
      await changeMembers(c, { type: 'promote', nodeId: id });
    }
    expect(c.config()).toEqual({ voters: [survivor, ...ids('n4', 'n5')], learners: [] });
    const leader = c.leader()!;
    const commit = c.status(leader)!.commitIndex;
    expect(await c.runUntil(() => c.memberNodes().every((n) => n.applied === commit), 50)).toBe(true);
    workload.verifyExactlyOnce(c.memberNodes());
    expect(workload.stats.acked).toBeGreaterThan(10);
  });

  it('membership changes under random faults (the membership profile) keep every invariant', async () => {
    let changes = 0;
    for (const seed of [916, 917, 918, 919]) changes += (await runSimulation({ seed, steps: 200, nodes: seed % 2 === 0 ? 3 : 5, profile: 'membership' })).confChanges;
    expect(changes).toBeGreaterThan(8);
  });
});
