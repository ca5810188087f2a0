// Storage faults in the simulator (issue 19, after TigerBeetle's VOPR): a node's synced data comes back damaged (a
// flipped bit, a lost tail, a lost range, an older copy of the whole directory). The node must notice, vote and
// count for nothing until it has learnt back what it had acknowledged, and no acknowledged write may be lost or read
// wrong meanwhile; the checkers run after every event, and the workload checks every linearizable read.
import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/lib/ids.js';
import { cmd, electLeader, newCluster, one } from './helpers.js';
import { runSimulation } from './run.js';
import type { StorageFault } from './schedule.js';
import { Workload } from './workload.js';

const faults: readonly StorageFault[] = ['flip', 'tail', 'range', 'stale'];

/**
 * Every node applied `last` and as much as any other: a command acknowledged after `last` (the workload's last one,
 * in flight when it stopped) is applied everywhere before exactly-once is checked on every node.
 */
function allApplied(c: ReturnType<typeof newCluster>['c'], last: number): boolean {
  const top = Math.max(...c.nodes.map((n) => n.applied));
  return c.nodes.every((n) => n.applied >= last && n.applied >= top);
}

describe('storage faults', () => {
  for (const fault of faults) {
    it(`a follower whose disk comes back with ${fault === 'flip' ? 'a flipped bit' : fault === 'tail' ? 'its tail cut' : fault === 'range' ? 'a range lost' : 'an older copy of its directory'} recovers, and is a voter again with every acknowledged write`, async () => {
      const { c, log } = newCluster(3, 1900 + faults.indexOf(fault));
      const workload = new Workload(c, c.forkRandom(), { clients: 3 });
      const leader = await electLeader(c);
      const victim = c.ids.find((id) => id !== leader)!;
      await c.runTicks(30);
      // An older copy needs one: take it at a crash, then write more.
      c.crash(victim);
      c.restart(victim);
      await c.runTicks(30);
      expect(c.damage(victim, fault)).toBe(true);
      // A second fault at once would leave two of three voters damaged: refused.
      expect(c.damage(c.ids.find((id) => id !== leader && id !== victim)!, 'tail')).toBe(false);
      c.restart(victim);
      expect(await c.runUntil(() => !c.node(victim).damaged, 300)).toBe(true);
      workload.active = false;
      const last = await one(c, log, cmd(), 3);
      expect(await c.runUntil(() => allApplied(c, last) && workload.pendingCount() === 0, 300)).toBe(true);
      workload.verifyExactlyOnce();
      expect(workload.stats.acked).toBeGreaterThan(10);
      expect(c.stats.storageRepairs).toBe(1);
    });
  }

  it('a damaged leader steps down from a log it no longer trusts and comes back as a follower with everything', async () => {
    const { c, log } = newCluster(5, 1910);
    const workload = new Workload(c, c.forkRandom(), { clients: 3 });
    const old: NodeId = await electLeader(c);
    await c.runTicks(40);
    expect(c.damage(old, 'tail')).toBe(true);
    c.restart(old);
    expect(await c.runUntil(() => !c.node(old).damaged && c.leader() !== null, 400)).toBe(true);
    workload.active = false;
    const last = await one(c, log, cmd(), 5);
    expect(await c.runUntil(() => allApplied(c, last) && workload.pendingCount() === 0, 300)).toBe(true);
    workload.verifyExactlyOnce();
  });

  it('random schedules under storage faults (the soak profile) lose no acknowledged write and repair every damaged node', async () => {
    let faultsApplied = 0;
    for (let seed = 1920; seed < 1932; seed++) {
      const r = await runSimulation({ seed, steps: 150, nodes: seed % 2 === 0 ? 3 : 5, profile: 'storage' });
      faultsApplied += r.storageFaults;
    }
    expect(faultsApplied).toBeGreaterThan(12);
  });
});
