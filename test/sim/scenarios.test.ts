// The classic Raft lab scenarios on the simulated cluster: elections, agreement, persistence, Figure 8, unreliable
// networks and churn. The safety checkers run after every event of every test, on top of what each test asserts.
import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/lib/ids.js';
import type { Message } from '../../src/raft/types.js';
import { cmd, electLeader, newCluster, one } from './helpers.js';
import { runSimulation } from './run.js';
import type { SimCluster } from './cluster.js';

const others = (c: SimCluster, ...not: NodeId[]): NodeId[] => c.ids.filter((id) => !not.includes(id));
const termOf = (c: SimCluster, id: NodeId): number => c.status(id)!.term;

describe('leader election', () => {
  it('initial election: one leader, and the term stays put without failures', async () => {
    const { c } = newCluster(3, 101);
    const leader = await electLeader(c, 50);
    await c.runTicks(5);
    expect(c.leaders()).toEqual([leader]);
    const t = termOf(c, leader);
    for (const id of c.ids) expect(c.status(id)!.term).toBe(t);
    await c.runTicks(100);
    expect(c.leaders()).toEqual([leader]);
    for (const id of c.ids) expect(c.status(id)!.term).toBe(t);
  });

  it('re-election after the leader is cut off, and again after it rejoins', async () => {
    const { c } = newCluster(3, 102);
    const first = await electLeader(c);
    c.isolate(first);
    expect(await c.runUntil(() => others(c, first).some((id) => c.status(id)!.role === 'leader'), 60)).toBe(true);
    const second = others(c, first).find((id) => c.status(id)!.role === 'leader')!;
    expect(termOf(c, second)).toBeGreaterThan(termOf(c, first));
    // The old leader rejoins: it must not disturb the new one, and it must step down.
    c.heal();
    await c.runTicks(30);
    expect(c.leaders()).toEqual([second]);
    // Two of three gone: no leader among the rest.
    const third = others(c, second)[0]!;
    c.isolate(second);
    c.isolate(third);
    await c.runTicks(40);
    expect(c.leaders()).toEqual([]);
    // One comes back: a quorum again, so a leader again.
    c.partition([[second, others(c, second, third)[0]!]]);
    expect(await c.runUntil(() => c.leader() !== null && c.leader() !== third, 60)).toBe(true);
    c.heal();
    await c.runTicks(30);
    expect(c.leaders()).toHaveLength(1);
  });

  it('no leader without a quorum', async () => {
    const { c } = newCluster(5, 103);
    const leader = await electLeader(c);
    // The leader keeps one follower: two of five is no quorum, and check-quorum makes it step down.
    const [f1] = others(c, leader);
    c.partition([[leader, f1!], ...others(c, leader, f1!).map((id) => [id])]);
    await c.runTicks(50);
    expect(c.leaders()).toEqual([]);
    c.heal();
    await electLeader(c, 60);
  });

  it('many elections with 7 nodes', async () => {
    const { c } = newCluster(7, 104);
    await electLeader(c);
    const random = c.forkRandom();
    for (let round = 0; round < 10; round++) {
      const cut = new Set<NodeId>();
      while (cut.size < 3) cut.add(c.ids[random.int(7)]!);
      const majority = others(c, ...cut);
      c.partition([majority, ...[...cut].map((id) => [id])]);
      // Four of seven is a quorum: it must have (or elect) a leader; the three cut off must not.
      expect(await c.runUntil(() => majority.some((id) => c.status(id)!.role === 'leader'), 80)).toBe(true);
      await c.runTicks(25);
      for (const id of cut) expect(c.status(id)!.role).not.toBe('leader');
      c.heal();
    }
    await c.runTicks(30);
    expect(c.leaders()).toHaveLength(1);
  });
});

describe('agreement', () => {
  it('basic agreement', async () => {
    const { c, log } = newCluster(3, 201);
    await electLeader(c);
    let last = 0;
    for (let i = 0; i < 5; i++) {
      const data = cmd();
      const index = await one(c, log, data, 3);
      if (last > 0) expect(index).toBe(last + 1);
      last = index;
    }
  });

  it('agreement despite a failed follower', async () => {
    const { c, log } = newCluster(3, 202);
    const leader = await electLeader(c);
    await one(c, log, cmd(), 3);
    const follower = others(c, leader)[0]!;
    c.isolate(follower);
    await one(c, log, cmd(), 2);
    await one(c, log, cmd(), 2);
    await c.runTicks(30);
    await one(c, log, cmd(), 2);
    const data = cmd();
    c.heal();
    const index = await one(c, log, data, 3);
    expect(await c.runUntil(() => log.count(index, data) === 3, 50)).toBe(true);
  });

  it('no commit without a majority, and index reuse after a minority partition', async () => {
    const { c, log } = newCluster(5, 203);
    const old = await electLeader(c);
    await one(c, log, cmd(), 5);
    const follower = others(c, old)[0]!;
    const majority = others(c, old, follower);
    c.partition([[old, follower], majority]);
    const lost = [cmd(), cmd(), cmd()];
    for (const data of lost) expect(c.propose(old, [data])?.ok).toBe(true);
    const firstLost = c.status(old)!.lastIndex - 2;
    await c.runTicks(40);
    // Two of five hold them: the minority may not commit them (the majority may reuse the indexes meanwhile).
    for (const id of [old, follower]) expect(c.status(id)!.commitIndex).toBeLessThan(firstLost);
    // The majority elects its own leader and reuses those indexes.
    expect(await c.runUntil(() => majority.some((id) => c.status(id)!.role === 'leader'), 60)).toBe(true);
    const data = cmd();
    const index = await one(c, log, data, 3);
    expect(index).toBeLessThanOrEqual(firstLost + 1);
    c.heal();
    const after = cmd();
    const at = await one(c, log, after, 5);
    expect(await c.runUntil(() => log.count(at, after) === 5 && log.count(index, data) === 5, 50)).toBe(true);
    for (const l of lost) expect(log.everApplied(l)).toBe(false);
  });

  it('concurrent proposals', async () => {
    const { c, log } = newCluster(3, 204);
    const leader = await electLeader(c);
    await one(c, log, cmd(), 3);
    const batch = Array.from({ length: 20 }, () => cmd());
    // Half through the leader, half through followers (forwarded by their cores), all at one instant.
    batch.forEach((data, i) => expect(c.propose(i % 2 === 0 ? leader : others(c, leader)[i % 4 === 1 ? 0 : 1]!, [data])?.ok).toBe(true));
    expect(await c.runUntil(() => batch.every((data) => log.byNode.every((l) => l.some((e) => e !== undefined && e.data === data))), 50)).toBe(true);
    const indexes = batch.map((data) => log.byNode[0]!.findIndex((e) => e !== undefined && e.data === data));
    expect(new Set(indexes).size).toBe(batch.length);
  });

  it("a partitioned old leader's entries are discarded when it rejoins", async () => {
    const { c, log } = newCluster(3, 205);
    await one(c, log, cmd(), 3);
    const leader1 = c.leader()!;
    c.isolate(leader1);
    const stale = [cmd(), cmd(), cmd()];
    for (const data of stale) c.propose(leader1, [data]);
    // The other two elect a new leader and commit.
    await one(c, log, cmd(), 2);
    const leader2 = c.leaders().find((id) => id !== leader1)!;
    // The new leader is cut off; the old one comes back and joins the remaining node.
    c.heal();
    c.isolate(leader2);
    await one(c, log, cmd(), 2);
    c.heal();
    await one(c, log, cmd(), 3);
    for (const data of stale) expect(log.everApplied(data)).toBe(false);
  });

  it('fast backtracking over 50 divergent entries in few round trips', async () => {
    const { c, log } = newCluster(5, 206);
    const old = await electLeader(c);
    await one(c, log, cmd(), 5);
    const follower = others(c, old)[0]!;
    const majority = others(c, old, follower);
    c.partition([[old, follower], majority]);
    for (let i = 0; i < 50; i++) c.propose(old, [cmd()]);
    await c.runTicks(5);
    expect(c.status(follower)!.lastIndex).toBe(c.status(old)!.lastIndex);
    // The majority moves on with 50 entries of its own over the same indexes.
    expect(await c.runUntil(() => majority.some((id) => c.status(id)!.role === 'leader'), 60)).toBe(true);
    for (let i = 0; i < 49; i++) c.propose(c.leader()!, [cmd()]);
    const last = await one(c, log, cmd(), 3);
    // A leader of a later term starts by probing every follower at its own last index, far past the fork.
    const l2 = c.leader()!;
    c.crash(l2);
    c.restart(l2);
    // l2 is starting again (no status yet) for a moment.
    expect(await c.runUntil(() => majority.some((id) => c.status(id)?.role === 'leader' && c.status(id)!.term > termOf(c, old)), 80)).toBe(true);
    await c.runTicks(3);
    c.resetStats();
    c.heal();
    expect(await c.runUntil(() => log.countAny(last) === 5, 100)).toBe(true);
    // Two divergent logs of 50 entries: the conflict-term hints find each fork in two rejections, not fifty.
    expect(c.stats.rejectedAppends).toBeGreaterThan(0);
    expect(c.stats.rejectedAppends).toBeLessThanOrEqual(6);
  });

  it('a message budget for one election and for an idle second', async () => {
    // A seed whose first election has one campaign (in about a third of seeds two nodes time out close together, and
    // the budget below is for one election, not two).
    const { c } = newCluster(3, 210);
    await electLeader(c);
    expect(c.stats.sent.vote).toBe(4);
    // pre-vote, vote and the first append, each a request and a response per peer, plus slack for a heartbeat.
    expect(c.stats.sentTotal).toBeLessThanOrEqual(3 * 2 * 2 + 4);
    await c.runTicks(20);
    c.resetStats();
    const ticksPerSecond = 10;
    await c.runTicks(ticksPerSecond);
    // One heartbeat and its response per follower per heartbeat interval, nothing else.
    const hb = c.params.heartbeatTicks;
    expect(c.stats.sentTotal).toBeLessThanOrEqual((2 * 2 * ticksPerSecond) / hb + 4);
    expect(c.stats.sent.vote + c.stats.sent.append).toBe(0);
  });
});

describe('persistence', () => {
  it('persistence across a restart of one node, of the leader and of all nodes', async () => {
    const { c, log } = newCluster(3, 301);
    const first = cmd();
    const i1 = await one(c, log, first, 3);
    for (const id of c.ids) c.crash(id);
    for (const id of c.ids) c.restart(id);
    // Everything committed before is applied again by every node after the restart, at the same index.
    expect(await c.runUntil(() => log.count(i1, first) === 3, 100)).toBe(true);
    await one(c, log, cmd(), 3);
    const leader = c.leader()!;
    c.crash(leader);
    c.restart(leader);
    await one(c, log, cmd(), 3);
    const follower = others(c, c.leader()!)[0]!;
    c.crash(follower);
    const whileDown = cmd();
    const i2 = await one(c, log, whileDown, 2);
    c.restart(follower);
    expect(await c.runUntil(() => log.count(i2, whileDown) === 3, 100)).toBe(true);
    // Crash everything again mid-stream: what was acknowledged survives.
    for (const id of c.ids) c.crash(id);
    await c.runTicks(20);
    for (const id of c.ids) c.restart(id);
    expect(await c.runUntil(() => log.count(i2, whileDown) === 3 && log.count(i1, first) === 3, 100)).toBe(true);
  });
});

describe('durability', () => {
  it('a follower never acknowledges entries a newer leader replaced before they reached its disk', async () => {
    // Found by the soak: a follower queued acknowledgements for entries still in memory, a leader of a later term
    // replaced them, and the acknowledgements went out after a write that no longer held them.
    const { c, log } = newCluster(5, 801);
    const a = await electLeader(c);
    const [f, b, d, e] = others(c, a) as [NodeId, NodeId, NodeId, NodeId];
    const base = await one(c, log, cmd(), 5);
    // Only f hears a from now on, and f's disk is slow: its acknowledgements of x2 and x3 wait behind x1's write.
    for (const id of [b, d, e]) c.cutOneWay(a, id);
    c.node(f).diskLatencyUnits = [3000, 3000];
    for (let i = 0; i < 3; i++) {
      c.propose(a, [cmd()]);
      await c.runTicks(1);
    }
    expect(c.status(f)!.lastIndex).toBe(base + 3);
    expect(c.node(f).disk.lastIndex).toBe(base);
    const oldTerm = termOf(c, a);
    // b, d and e elect a leader of a later term, whose no-op replaces x1..x3 on f while x1 is still being written.
    expect(await c.runUntil(() => [b, d, e].some((id) => c.status(id)!.role === 'leader'), 60)).toBe(true);
    // (a hears the new term too: only its own messages are cut.)
    expect(await c.runUntil(() => c.status(f)!.term > oldTerm && c.status(f)!.leaderId !== null, 30)).toBe(true);
    // Every acknowledgement f sends is checked against its disk when it is sent.
    c.node(f).diskLatencyUnits = null;
    c.heal();
    await one(c, log, cmd(), 5);
  });
});

describe('slow disks', () => {
  it('followers whose writes take longer than an election timeout still answer heartbeats: no election', async () => {
    // Found by bench/snapshot.ts: both followers saved a snapshot, their log writes waited behind it, and the leader,
    // hearing from no quorum within an election timeout, stepped down by check-quorum.
    const { c, log } = newCluster(3, 811);
    const leader = await electLeader(c);
    const term = termOf(c, leader);
    await one(c, log, cmd(), 3);
    for (const id of others(c, leader)) c.node(id).diskLatencyUnits = [2500, 2500]; // 2.5 election timeouts
    for (let i = 0; i < 60; i++) {
      c.propose(leader, [cmd()]);
      await c.runTicks(1);
      expect(c.leaders()).toEqual([leader]);
    }
    for (const id of c.ids) expect(termOf(c, id)).toBe(term);
    // Writes went on committing all the while, a write's latency at a time.
    expect(c.status(leader)!.commitIndex).toBeGreaterThan(c.status(leader)!.lastIndex - 60);
    for (const id of others(c, leader)) c.node(id).diskLatencyUnits = null;
    await one(c, log, cmd(), 3);
    expect(c.leaders()).toEqual([leader]);
  });
});

describe('figure 8', () => {
  it('the Figure 8 scenario: an entry from an old term is never committed by counting replicas', async () => {
    // One entry per append, so a follower can hold an old-term entry without the new leader's no-op after it.
    const { c, log } = newCluster(5, 401, { raft: { entriesPerAppendMax: 1 } });
    const s1 = await electLeader(c);
    const [s2, s3, s4, s5] = others(c, s1) as [NodeId, NodeId, NodeId, NodeId];
    const base = await one(c, log, cmd(), 5);
    // Who may win an election is scripted: vote requests from anyone but `candidate` are lost, and appends from s1
    // can be stripped of entries newer than x.
    let candidate: NodeId | null = null;
    let stripNewerThan = 0;
    c.intercept = (m: Message): Message | null => {
      if (m.type === 'vote' && candidate !== null && m.from !== candidate) return null;
      if (m.type === 'append' && m.from === s1 && stripNewerThan > 0) return { ...m, entries: m.entries.filter((e) => e.term <= stripNewerThan) };
      return m;
    };
    const win = async (id: NodeId): Promise<boolean> => {
      candidate = id;
      return await c.runUntil(() => {
        const st = c.status(id);
        if (st?.role === 'follower') c.campaign(id);
        return st?.role === 'leader';
      }, 100);
    };
    // (a) s1 replicates x at base+1 to s2 only, then crashes.
    for (const id of [s3, s4, s5]) c.cutOneWay(s1, id);
    const x = cmd();
    c.propose(s1, [x]);
    // A leader's appends leave before its own write: wait for x on s1's disk too, or the crash may take it back.
    expect(await c.runUntil(() => c.status(s2)!.lastIndex === base + 1 && c.node(s1).disk.lastIndex === base + 1, 20)).toBe(true);
    const termX = c.status(s1)!.term;
    c.crash(s1);
    c.heal();
    // (b) s5 becomes leader with s3 and s4, appends its no-op at base+1 alone, and crashes.
    c.isolate(s2);
    expect(await win(s5)).toBe(true);
    c.isolate(s5);
    await c.runTicks(2);
    expect(c.node(s5).disk.entries[base]!.term).toBeGreaterThan(termX);
    c.crash(s5);
    // (c) s1 comes back and wins with s3 and s4; they receive x but never the new term's entries. x is now on a
    // majority (s1, s2, s3, s4), and s1 knows that s3 and s4 hold it: it still must not commit it.
    c.restart(s1);
    c.partition([[s1, s3, s4], [s2], [s5]]);
    stripNewerThan = termX;
    expect(await win(s1)).toBe(true);
    expect(await c.runUntil(() => c.status(s3)!.lastIndex === base + 1 && c.status(s4)!.lastIndex === base + 1, 30)).toBe(true);
    await c.runTicks(20);
    expect(c.status(s1)!.role).toBe('leader');
    expect(c.status(s1)!.progress.get(s3)?.match).toBe(base + 1);
    // Not x (its commit index may be below base too: a restarted node writes no commit index alone, and learns it
    // again from a leader, which here is s1 itself, stuck behind x).
    expect(c.status(s1)!.commitIndex).toBeLessThanOrEqual(base);
    // (d) s1 crashes; s5 (its last term is newer than x's) wins with s2, s3 and s4 and overwrites x everywhere.
    // Had s1 committed x, the checkers would fail here: a leader without a committed entry.
    c.crash(s1);
    stripNewerThan = 0;
    c.heal();
    c.restart(s5);
    expect(await win(s5)).toBe(true);
    candidate = null;
    c.restart(s1);
    const after = cmd();
    const at = await one(c, log, after, 5);
    expect(await c.runUntil(() => log.count(at, after) === 5, 50)).toBe(true);
    expect(log.everApplied(x)).toBe(false);
    for (const l of log.byNode) expect(l[base + 1]!.term).toBeGreaterThan(termX);
  });
});

describe('unreliable networks and churn', () => {
  it('agreement on an unreliable network', async () => {
    for (const [seed, nodes] of [
      [501, 3],
      [502, 5],
    ] as const) {
      const r = await runSimulation({ seed, steps: 300, nodes, profile: 'lossy' });
      expect(r.acked).toBeGreaterThan(20);
    }
  });

  it('Figure 8 on an unreliable network', async () => {
    let crashes = 0;
    for (const seed of [601, 602, 603, 604]) {
      const r = await runSimulation({ seed, steps: 300, nodes: 5, profile: 'figure8' });
      crashes += r.crashes;
    }
    expect(crashes).toBeGreaterThan(10);
  });

  it('churn with crashes, restarts and partitions under load', async () => {
    let acked = 0;
    for (const [seed, nodes] of [
      [701, 3],
      [702, 5],
      [703, 5],
      [704, 7],
    ] as const) {
      acked += (await runSimulation({ seed, steps: 300, nodes, profile: 'chaos' })).acked;
    }
    expect(acked).toBeGreaterThan(50);
  });
});
