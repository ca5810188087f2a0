// Snapshots and membership through real RaftNodeDrivers in one process (MemoryNetwork, MemoryRaftStorage, the KV
// state machine; snapshot chunks handed straight to the target driver): logs stay bounded, lagging, replaced and
// restarted nodes catch up, members join by snapshot and get promoted, and removals keep a live quorum.
import { unpack } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { ctx, DriverCluster, memberOf, waitFor, type DriverNode } from './driver-harness.js';

let cluster: DriverCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function newCluster(): Promise<DriverCluster> {
  cluster = new DriverCluster({ snapshotThresholdEntries: 50 });
  await cluster.startAll();
  await cluster.leader();
  return cluster;
}

function stored(n: DriverNode): number {
  return n.storage.disk.entries.length;
}

/**
 * Waits for a moment when `leader` has heard from every other voter in the current check-quorum round. The core
 * clears every recentActive at each check, and removeMember counts only peers with recentActive as live: called
 * right after a check it refuses on a healthy cluster (see the it.fails test below). Call removeMember right after
 * this, in the same turn of the event loop.
 */
async function heardFromAll(leader: DriverNode): Promise<void> {
  await waitFor('the leader to hear from every voter', () => {
    const st = leader.driver.status();
    return st.voters.every((v) => v === leader.id || st.progress.get(v)?.recentActive === true);
  });
}

async function refusal(p: Promise<unknown>): Promise<MinkubeError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MinkubeError);
  return err as MinkubeError;
}

describe('the state machine applied index', () => {
  it("follows every applied entry, a new leader's no-op included, so a snapshot or backup says the index it holds", async () => {
    const c = await newCluster();
    const leader = await c.leader();
    // Nothing written: the newest entries are the configuration and the leader's no-op, no command.
    await waitFor('the no-op applied everywhere', () => [...c.running.values()].every((n) => n.driver.status().appliedIndex === leader.driver.status().commitIndex));
    for (const n of c.running.values()) expect(n.service.kv.appliedIndex, n.id).toBe(n.driver.status().appliedIndex);
  });
});

describe('RaftNodeDriver snapshots', () => {
  it('takes snapshots at the threshold on every node, keeps the stored log bounded, and the state machines agree', async () => {
    const c = await newCluster();
    let storedMax = 0;
    const sampler = setInterval(() => {
      for (const n of c.running.values()) storedMax = Math.max(storedMax, stored(n));
    }, 2);
    try {
      await c.put(500);
    } finally {
      clearInterval(sampler);
    }
    const applied = await c.converged();
    expect(applied).toBeGreaterThan(500);
    for (const n of c.running.values()) {
      const snap = n.storage.snapshotInfo();
      expect(snap, `${n.id} holds a snapshot`).not.toBeNull();
      expect(snap!.meta.index).toBeGreaterThan(applied - 2 * 50);
      expect(await n.storage.firstIndex()).toBeGreaterThan(1);
      expect(n.driver.status().firstIndex).toBeGreaterThan(1);
      expect(n.driver.status().snapshot?.index).toBe(snap!.meta.index);
      // About the threshold (50) plus the retained tail (12) plus one batch of writes: nowhere near the 500 written.
      expect(stored(n)).toBeLessThanOrEqual(120);
    }
    expect(storedMax).toBeLessThanOrEqual(120);
  });

  it('the applied-bytes threshold alone also takes snapshots', async () => {
    cluster = new DriverCluster({ snapshotThresholdEntries: 1_000_000, snapshotThresholdBytes: 50_000 });
    const c = cluster;
    await c.startAll();
    await c.put(200, 'big', 25, 1000);
    const applied = await c.converged();
    for (const n of c.running.values()) {
      const snap = n.storage.snapshotInfo();
      expect(snap, `${n.id} holds a snapshot`).not.toBeNull();
      // About 200 KB applied: the last snapshot came after at least three thresholds' worth.
      expect(snap!.meta.index).toBeGreaterThan(150);
      expect(snap!.meta.index).toBeLessThanOrEqual(applied);
    }
  });

  it('a follower replaced by a fresh one (same id, empty storage) catches up by snapshot', async () => {
    const c = await newCluster();
    await c.put(100);
    const leader = await c.leader();
    const victim = [...c.running.keys()].find((id) => id !== leader.id)!;
    await c.stop(victim);
    await c.put(300);
    // The leader's log no longer reaches back to index 1.
    expect((await c.leader()).driver.status().firstIndex).toBeGreaterThan(1);

    // The first streams break: the leader hears 'failure' and sends the snapshot again later.
    c.failPosts.set(victim, 3);
    const fresh = await c.start(victim, { wipe: true });
    await c.converged();
    expect(c.failPosts.get(victim)).toBe(0);
    expect(c.installs.get(victim)).toBeGreaterThanOrEqual(1);
    expect(c.chunkBytesReceived.get(victim)).toBeGreaterThan(0);
    expect(fresh.storage.snapshotInfo()).not.toBeNull();
    expect(fresh.driver.status().firstIndex).toBeGreaterThan(1);
    // And it keeps up with new writes, and restarts from the snapshot it received.
    await c.put(50, 'after');
    await c.converged();
    await c.stop(victim);
    await c.start(victim);
    await c.converged();
  });

  it('a snapshot of several chunks resumes where a broken stream stopped', async () => {
    const c = await newCluster();
    // About 2.5 MB of state: three chunks of limits.snapshotChunkBytes (1 MB).
    await c.put(64, 'big', 8, 40_000);
    const leader = await c.leader();
    const victim = [...c.running.keys()].find((id) => id !== leader.id)!;
    await c.stop(victim);
    await c.put(60, 'small');
    // The leader's snapshots of those writes done before the victim comes back: one written mid-transfer would start
    // a stream of its own (from offset 0), which is not what this counts.
    let seen = -1;
    let sameSinceMs = Date.now();
    await waitFor('the leader to finish its snapshots', () => {
      const index = leader.storage.snapshotInfo()?.meta.index ?? 0;
      if (index !== seen) [seen, sameSinceMs] = [index, Date.now()];
      return Date.now() - sameSinceMs >= 300;
    }, 10_000);
    let broken = false;
    c.postFault = (target, h) => {
      if (target !== victim || broken || h.offset === 0) return false;
      broken = true; // the second chunk of the first stream
      return true;
    };
    await c.start(victim, { wipe: true });
    await c.converged(15_000);
    expect(broken).toBe(true);
    expect(c.installs.get(victim)).toBe(1);
    const size = c.node(victim).storage.snapshotInfo()!.sizeBytes;
    expect(size).toBeGreaterThan(2 * limits.snapshotChunkBytes);
    // The first chunk went once per stream (the resumed stream's first post only learns the offset, then goes on); on a
    // loaded machine a post of it that timed out may go once more, and is answered at once as under way (CI saw 3).
    const received = c.posts.filter(([t]) => t === victim);
    const firstChunks = received.filter(([, offset, bytes]) => offset === 0 && bytes > 0).length;
    expect(firstChunks).toBeGreaterThanOrEqual(2);
    expect(firstChunks).toBeLessThanOrEqual(3);
    expect(c.chunkBytesReceived.get(victim)).toBeLessThanOrEqual(size + limits.snapshotChunkBytes);
  });

  it('an isolated follower whose stale log the leader compacted away catches up by snapshot once healed', async () => {
    const c = await newCluster();
    await c.put(60);
    await c.converged();
    const leader = await c.leader();
    const victim = [...c.running.values()].find((n) => n.id !== leader.id)!;
    const staleLast = victim.driver.status().lastIndex;
    c.network.isolate(victim.id);
    await c.put(300);
    expect(leader.driver.status().firstIndex).toBeGreaterThan(staleLast + 1);
    c.network.heal();
    await c.converged();
    expect(c.installs.get(victim.id)).toBeGreaterThanOrEqual(1);
    expect(victim.storage.snapshotInfo()!.meta.index).toBeGreaterThan(staleLast);
  });

  it('a restarted node restores its snapshot, replays the rest of its log, and agrees; so does a whole-cluster restart', async () => {
    const c = await newCluster();
    await c.put(320);
    await c.converged();
    const follower = [...c.running.values()].find((n) => n.driver.status().role !== 'leader')!;
    const id = follower.id;
    await c.stop(id);

    const reopened = await c.open(id);
    const snap = reopened.storage.snapshotInfo()!;
    expect(snap).not.toBeNull();
    // Before the core runs: the state machine holds the snapshot's state, the core starts past it.
    expect(reopened.service.kv.size).toBeGreaterThan(0);
    expect(reopened.service.kv.appliedIndex).toBeLessThanOrEqual(snap.meta.index);
    expect(reopened.driver.applied).toBe(snap.meta.index);
    expect(reopened.driver.status().firstIndex).toBeGreaterThan(1);
    reopened.driver.start();
    await c.converged();
    expect(c.installs.get(id) ?? 0).toBe(0);

    // Everyone down, everyone back from their disks: same state, and writable.
    const before = Buffer.from([...c.running.values()][0]!.service.kv.snapshot());
    const ids = [...c.running.keys()];
    for (const x of ids) await c.stop(x);
    for (const x of ids) await c.start(x);
    await c.leader();
    await c.converged();
    // The same state, but for its applied index: the new leader's no-op was applied after the restart.
    const withoutIndex = (bytes: Uint8Array): unknown => ({ ...(unpack(bytes) as Record<string, unknown>), appliedIndex: null });
    expect(withoutIndex(c.node(ids[0]!).service.kv.snapshot())).toEqual(withoutIndex(before));
    expect(c.node(ids[0]!).service.kv.get('k5')?.value).toMatch(/^k-v/);
    await c.put(60, 'again');
    await c.converged();
  });
});

describe('RaftNodeDriver membership', () => {
  it('a joining node catches up by snapshot and is promoted; then a follower and the leader are removed and writes go on', async () => {
    const c = await newCluster();
    await c.put(300);
    const leader = await c.leader();
    expect(leader.driver.status().firstIndex).toBeGreaterThan(1);

    const m4 = await c.start('m4', { join: true });
    const added = await leader.membership.addMember(memberOf('m4'), ctx());
    expect(added.created).toBe(true);
    expect(added.member).toMatchObject({ id: 'm4', raftAddress: 'raft-m4', apiAddress: 'api-m4' });
    await waitFor('m4 to be promoted to voter', () => m4.driver.status().voters.includes(nodeId('m4')));
    await c.converged();
    expect(c.installs.get('m4')).toBeGreaterThanOrEqual(1);
    expect(m4.storage.snapshotInfo()).not.toBeNull();
    const again = await (await c.leader()).membership.addMember(memberOf('m4'), ctx());
    expect(again.created).toBe(false);
    // Another member's address, whichever kind, is refused; so is one address for both.
    const refusedAdd = (req: { id: string; raftAddress: string; apiAddress: string }) => c.leader().then((l) => l.membership.addMember(req, ctx())).then(() => null, (err: unknown) => err as { code: string; message: string });
    expect(await refusedAdd({ id: 'm5', raftAddress: 'api-m1', apiAddress: 'api-m5' })).toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED', message: expect.stringContaining('member m1 already uses the address api-m1') as unknown });
    expect(await refusedAdd({ id: 'm5', raftAddress: 'raft-m5', apiAddress: 'raft-m5' })).toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED', message: expect.stringContaining('the raft and API addresses are the same') as unknown });
    // A joined node restarts as one (join: true again) from what it holds, and stays a voter.
    await c.stop('m4');
    const m4b = await c.start('m4', { join: true });
    expect(m4b.driver.status().voters).toContain(nodeId('m4'));
    await c.put(20, 'one');
    await c.converged();

    // Remove a follower voter.
    const l2 = await c.leader();
    const follower = [...c.running.values()].find((n) => n.id !== l2.id && n.id !== 'm4')!;
    await heardFromAll(l2);
    const view = await l2.membership.removeMember(follower.id, ctx());
    expect(view.members.map((m) => m.id).sort()).toEqual([...c.running.keys()].filter((id) => id !== follower.id).sort());
    await c.stop(follower.id);
    await c.put(40, 'two');
    await c.converged();

    // Remove the leader: leadership moves, and the two left keep taking writes.
    const l3 = await c.leader();
    await heardFromAll(l3);
    await l3.membership.removeMember(l3.id, ctx());
    const l4 = await c.leader(10_000, [l3.id]);
    expect(l4.id).not.toBe(l3.id);
    // The removed manager (it applied its own removal) refuses at once what would wait for a leader it will never
    // know again: NOT_READY, which a client takes as "ask another manager", not NO_LEADER after the whole deadline.
    expect(l3.driver.status().voters).not.toContain(nodeId(l3.id));
    const farDeadline = performance.now() + 60_000;
    const e = await refusal(l3.driver.linearizableBarrier(farDeadline));
    expect(e.code).toBe('NOT_READY');
    expect(e.message).toContain('not a member of the cluster');
    await c.stop(l3.id);
    await c.put(40, 'three');
    await c.converged();
    const voters = [...(await c.leader()).driver.status().voters].sort();
    expect(voters).toEqual([...c.running.keys()].sort());
    expect(voters).toHaveLength(2);
  });

  // BUG (src/manager/membership.ts checkQuorumAfterRemoval): it counts a voter as live only while its
  // progress.recentActive is set, but the core clears every recentActive at each check-quorum round (every election
  // timeout) and sets it again only when the next answer arrives. Called in that gap, removeMember refuses with
  // MEMBERSHIP_CHANGE_REFUSED on a perfectly healthy cluster. Flip to it() once fixed.
  it('removes a follower of a healthy cluster even right after a check-quorum round', async () => {
    const c = await newCluster();
    const leader = await c.leader();
    const followers = (): boolean => {
      const st = leader.driver.status();
      return st.voters.every((v) => v === leader.id || st.progress.get(v)?.recentActive === false);
    };
    // Catch the gap (give up after a second, in case the status no longer shows one), then remove at once.
    const deadline = Date.now() + 1000;
    while (!followers() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    const follower = leader.driver.status().voters.find((v) => v !== leader.id)!;
    const view = await leader.membership.removeMember(follower, ctx());
    expect(view.members.map((m) => m.id)).not.toContain(follower);
  });

  it('moves leadership to a named voter, and refuses a target that is not a member', async () => {
    const c = await newCluster();
    const leader = await c.leader();
    const target = [...c.running.keys()].find((id) => id !== leader.id)!;
    const moved = await leader.membership.transferLeader(target, ctx());
    expect(moved.leaderId).toBe(target);
    expect((await c.leader()).id).toBe(target);
    await c.put(20);
    await c.converged();
    const err = await refusal((await c.leader()).membership.transferLeader('nobody', ctx()));
    expect(err.code).toBe('MEMBER_NOT_FOUND');
  });

  it('refuses to remove a voter when the live voters left would not form a quorum', async () => {
    const c = await newCluster();
    await c.put(20);
    const leader = await c.leader();
    const [f1, f2] = [...c.running.keys()].filter((id) => id !== leader.id) as [string, string];
    c.network.isolate(nodeId(f2));
    await waitFor(`the leader to notice ${f2} is gone`, () => leader.driver.status().progress.get(nodeId(f2))?.recentActive === false);

    const err = await refusal(leader.membership.removeMember(f1, ctx()));
    expect(err.code).toBe('MEMBERSHIP_CHANGE_REFUSED');
    expect(leader.driver.status().voters).toHaveLength(3);
    expect((await refusal(leader.membership.removeMember('nobody', ctx()))).code).toBe('MEMBER_NOT_FOUND');

    // Once the isolated voter is back, the same removal is fine.
    c.network.heal();
    await waitFor(`the leader to hear from ${f2} again`, () => leader.driver.status().progress.get(nodeId(f2))?.recentActive === true);
    const view = await leader.membership.removeMember(f1, ctx());
    expect(view.members.map((m) => m.id).sort()).toEqual([leader.id, f2].sort());
  });
});
