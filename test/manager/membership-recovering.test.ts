// Membership changes and leadership transfers while a manager recovers lost or damaged storage (docs/storage-faults.md),
// through the real MembershipServiceImpl over real drivers: a change that would leave too few voters with intact
// storage is refused at once with a 409 naming them (accepted, it never committed and left the cluster with no leader
// for good), a transfer to a recovering voter is refused at once, and a write with no leader says why none can be
// elected. The recovering manager's marker is damaged, as a tester's `head -c 1024 /dev/urandom > m3.marker` left it.
import { afterEach, describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { quorumProblemAfterRemoval } from '../../src/manager/membership.js';
import type { PeerProgress, RaftStatus } from '../../src/raft/types.js';
import { rejection } from '../support/errors.js';
import { ctx, DriverCluster, waitFor, type DriverNode } from './driver-harness.js';

let cluster: DriverCluster;
afterEach(() => cluster.close());

/** m1..m3 with a leader; `recovering` followers restarted with damaged markers, and seen recovering by the leader. */
async function withRecovering(count: 1 | 2): Promise<{ leader: DriverNode; recovering: string[]; intact: string[] }> {
  cluster = new DriverCluster({ seed: 19 });
  await cluster.startAll();
  const leader = await cluster.leader();
  await cluster.put(5);
  const followers = ['m1', 'm2', 'm3'].filter((id) => id !== leader.id);
  const recovering = followers.slice(0, count);
  for (const id of recovering) {
    await cluster.stop(id);
    await cluster.start(id, { markerDamaged: true });
  }
  await waitFor('the recovering managers to say so', () => recovering.every((id) => cluster.node(id).driver.storage().state === 'recovering') || undefined);
  return { leader, recovering, intact: followers.filter((id) => !recovering.includes(id)) };
}

describe('a membership change while a voter recovers its storage', () => {
  it('refuses to remove an intact voter, the leader included, when the voters left with intact storage would be no quorum', async () => {
    const { leader, recovering, intact } = await withRecovering(1);
    const [r] = recovering;
    await waitFor('the leader to know it recovers', () => leader.driver.status().peersRecovering.includes(nodeId(r!)) || undefined);
    for (const id of [intact[0]!, leader.id]) {
      const started = Date.now();
      const err = await rejection(leader.membership.removeMember(id, ctx()));
      expect(err).toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED', status: 409 });
      expect(err.message).toContain(`removing ${id} would leave 2 voters of which only 1 is live with intact storage`);
      expect(err.message).toContain(`${r} is recovering lost or damaged storage and votes for no one until repaired`);
      // An election timeout at most (100 ms here), not the request timeout.
      expect(Date.now() - started).toBeLessThan(2_000);
    }
    // Nothing was appended: the configuration is as it was, the leader leads, and writes go on.
    expect(leader.driver.status()).toMatchObject({ role: 'leader', voters: ['m1', 'm2', 'm3'] });
    await cluster.putOne('after', 'refusals');
    // Removing the recovering voter itself leaves two intact voters: that is fine.
    await leader.membership.removeMember(r!, ctx());
    expect(leader.driver.status().voters).toEqual([leader.id, intact[0]].sort());
  });

  it('refuses at once to hand leadership to a recovering voter; another transfer ends its recovery, and then the removal goes through', async () => {
    const { leader, recovering, intact } = await withRecovering(1);
    const [r] = recovering;
    await waitFor('the leader to know it recovers', () => leader.driver.status().peersRecovering.includes(nodeId(r!)) || undefined);
    const started = Date.now();
    const err = await rejection(leader.membership.transferLeader(r!, ctx()));
    expect(err).toMatchObject({ code: 'LEADER_TRANSFER_FAILED', status: 409, message: `${r} is recovering its storage and cannot lead until it is repaired` });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(leader.driver.status().role).toBe('leader');
    // Its marker was lost: an entry of a later term repairs it, which a new leader's first entry is.
    expect(await leader.membership.transferLeader(intact[0]!, ctx())).toMatchObject({ leaderId: intact[0] });
    await waitFor('the storage repaired', () => cluster.node(r!).driver.storage().state === 'ok' || undefined);
    const next = cluster.node(intact[0]!);
    await waitFor('the new leader to know it is repaired', () => !next.driver.status().peersRecovering.includes(nodeId(r!)) || undefined);
    await next.membership.removeMember(leader.id, ctx());
    expect(next.driver.status().voters).toEqual([intact[0], r].sort());
  });
});

describe('a write while a majority of voters recovers', () => {
  it('answers NO_LEADER saying why no leader can be elected', async () => {
    const { leader, recovering } = await withRecovering(2);
    await waitFor('the intact manager to know why', () => leader.driver.noQuorumReason() ?? undefined, 10_000);
    const err = await rejection(leader.service.kvPut('k', 'v', undefined, ctx(500)));
    expect(err).toBeInstanceOf(MinkubeError);
    expect(err.code).toBe('NO_LEADER');
    expect(err.message).toMatch(/^no leader is known: 2 of 3 voters \(m\d, m\d\) are recovering lost or damaged storage and vote for no one/);
    // A recovering manager hears from no peer whether it recovers too: it says what it knows, its own state.
    const own = await rejection(cluster.node(recovering[0]!).service.kvPut('k', 'v', undefined, ctx(500)));
    expect(own.code).toBe('NO_LEADER');
    expect(own.message).toMatch(/^no leader is known; this manager is recovering lost or damaged storage and votes for no one/);
  });
});

describe('quorumProblemAfterRemoval: who counts as live', () => {
  /** m1 leads m1..m5; `active` answered since the core's last check-quorum round, `recovering` said they recover. */
  function status(active: string[], recovering: string[] = []): RaftStatus {
    const progress = new Map<NodeId, PeerProgress>();
    for (const id of ['m2', 'm3', 'm4', 'm5']) {
      progress.set(nodeId(id), { recentActive: active.includes(id), recovering: recovering.includes(id) } as PeerProgress);
    }
    return { id: nodeId('m1'), voters: ['m1', 'm2', 'm3', 'm4', 'm5'].map(nodeId), progress, peersRecovering: recovering.map(nodeId) } as unknown as RaftStatus;
  }
  const heard = (...ids: string[]): Set<NodeId> => new Set(ids.map(nodeId));

  it('counts a voter heard at any look of the wait, not only at the last one (the core forgets them every round)', () => {
    // At the last look only m2 was active (a check-quorum round had just begun), but m3 answered a look before.
    expect(quorumProblemAfterRemoval(status(['m2']), nodeId('m5'), heard('m2', 'm3'))).toBeNull();
    expect(quorumProblemAfterRemoval(status(['m2']), nodeId('m5'), heard('m2'))).toBe(
      'removing m5 would leave 4 voters of which only 2 are live with intact storage (m1, m2); a quorum needs 3',
    );
  });

  it('never counts a voter recovering its storage, however recently heard, and names it', () => {
    expect(quorumProblemAfterRemoval(status(['m2', 'm3'], ['m3']), nodeId('m5'), heard('m2', 'm3'))).toBe(
      'removing m5 would leave 4 voters of which only 2 are live with intact storage (m1, m2); a quorum needs 3; m3 is recovering lost or damaged storage and votes for no one until repaired (retry once repaired)',
    );
    // Removing the leader: it does not count itself among the voters left.
    expect(quorumProblemAfterRemoval(status(['m2', 'm3', 'm4'], ['m3', 'm4']), nodeId('m1'), heard('m2', 'm3', 'm4'))).toBe(
      'removing m1 would leave 4 voters of which only 1 is live with intact storage (m2); a quorum needs 3; m3, m4 are recovering lost or damaged storage and vote for no one until repaired (retry once repaired)',
    );
    expect(quorumProblemAfterRemoval(status(['m2', 'm3', 'm4', 'm5'], ['m4']), nodeId('m1'), heard('m2', 'm3', 'm4', 'm5'))).toBeNull();
  });
});
