// The simulator itself: one seed replays one trace exactly, and every checker fails on a node built to break its
// invariant (a checker that cannot fail is worthless).
import { describe, expect, it } from 'vitest';
import { createRaftNode } from '../../src/raft/index.js';
import type { Entry, Message, RaftConfig, RaftInitialState, RaftNode, RaftStatus, Ready } from '../../src/raft/types.js';
import { logIndex, nodeId } from '../../src/lib/ids.js';
import { SafetyViolation } from './checkers.js';
import type { CoreFactory } from './cluster.js';
import { cmd, electLeader, newCluster, one } from './helpers.js';
import { commandKey, decodeCommand, SessionStateMachine, type SimStateMachine } from './state-machine.js';
import { runSimulation, SimulationFailure, type RunOptions } from './run.js';

async function traceOf(o: RunOptions): Promise<string[]> {
  const lines: string[] = [];
  await runSimulation({ ...o, trace: (l) => lines.push(l) });
  return lines;
}

/** Wraps a core, replacing some of its methods. */
function wrap(core: RaftNode, over: Partial<RaftNode>): RaftNode {
  return {
    tick: () => core.tick(),
    step: (m) => core.step(m),
    propose: (c) => core.propose(c),
    readIndex: (ctx) => core.readIndex(ctx),
    transferLeadership: (t) => core.transferLeadership(t),
    campaign: () => core.campaign(),
    hasReady: () => core.hasReady(),
    ready: () => core.ready(),
    advance: (rd) => core.advance(rd),
    takeWhileWriting: (applied) => core.takeWhileWriting(applied),
    conf: () => core.conf(),
    currentTerm: () => core.currentTerm(),
    currentRole: () => core.currentRole(),
    status: () => core.status(),
    entryAt: (i) => core.entryAt(i),
    snapshotMeta: (i) => core.snapshotMeta(i),
    compact: (meta, retain) => core.compact(meta, retain),
    reportSnapshot: (peer, status) => core.reportSnapshot(peer, status),
    proposeConfChange: (change) => core.proposeConfChange(change),
    ...over,
  };
}

/** Real cores everywhere but on `victim` (every node when null), whose core is wrapped by `over`. */
function breakNode(victim: string | null, over: (core: RaftNode) => Partial<RaftNode>): CoreFactory {
  return (config: RaftConfig, initial: RaftInitialState) => {
    const core = createRaftNode(config, initial);
    return victim === null || config.id === victim ? wrap(core, over(core)) : core;
  };
}

/** The failure of the first of `tries` runs (seeds o.seed, o.seed + 1, ...) that fails: some breakages need a
 * schedule that exercises them (a retried command committed twice, two candidates in one term). */
async function failureOf(o: RunOptions, tries = 1): Promise<SimulationFailure> {
  for (let k = 0; k < tries; k++) {
    try {
      await runSimulation({ ...o, seed: o.seed + k });
    } catch (err) {
      expect(err).toBeInstanceOf(SimulationFailure);
      return err as SimulationFailure;
    }
  }
  throw new Error(`${tries} runs passed: the checker did not notice the broken node`);
}

const run = { seed: 11, steps: 150, nodes: 3, profile: 'calm' } as const;

describe('determinism', () => {
  it('two runs with one seed print the identical trace', async () => {
    const o: RunOptions = { seed: 4242, steps: 120, nodes: 5, profile: 'crashes' };
    const a = await traceOf(o);
    const b = await traceOf(o);
    expect(a.length).toBeGreaterThan(1000);
    expect(b).toEqual(a);
    expect(await traceOf({ ...o, seed: 4243 })).not.toEqual(a);
  });

  it('tracing does not change the run', async () => {
    const o: RunOptions = { seed: 77, steps: 120, nodes: 3, profile: 'figure8' };
    const traced = await runSimulation({ ...o, trace: () => undefined });
    expect(await runSimulation(o)).toEqual(traced);
  });
});

describe('the checkers catch a broken node', () => {
  it('election safety: a node that claims to lead a term someone else leads', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        // Every follower that knows its leader claims to lead too (whoever wins the election).
        createCore: breakNode(null, (core) => ({
          status: (): RaftStatus => {
            const st = core.status();
            return st.term > 0 && st.role === 'follower' && st.leaderId !== null ? { ...st, role: 'leader' } : st;
          },
        })),
      },
    });
    expect(f.invariant).toBe('election safety');
  });

  it('state machine safety: a node that applies a different entry at an index', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        createCore: breakNode('n3', (core) => ({
          ready: (): Ready => {
            const rd = core.ready();
            const committedEntries = rd.committedEntries.map((e) => (e.index === 5 ? { ...e, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) } : e));
            return { ...rd, committedEntries };
          },
        })),
      },
    });
    expect(f.invariant).toBe('state machine safety');
    expect(f.message).toContain('npm run sim -- --seed 11 --steps 150 --nodes 3 --profile calm');
  });

  it('log matching: a node that persists an entry with other data under the same index and term', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        createCore: breakNode('n1', (core) => ({
          ready: (): Ready => {
            const rd = core.ready();
            return { ...rd, entries: rd.entries.map((e) => (e.index === 4 ? { ...e, data: new Uint8Array([9]) } : e)) };
          },
        })),
      },
    });
    expect(f.invariant).toBe('log matching');
  });

  it('leader completeness: a new leader whose log lacks a committed entry', async () => {
    const f = await failureOf({
      ...run,
      profile: 'crashes',
      cluster: {
        // Index 1 must stay in the logs for the broken entryAt to be asked about it.
        snapshots: null,
        createCore: breakNode(null, (core) => ({
          entryAt: (i) => {
            const e = core.entryAt(i);
            const st = core.status();
            return e !== undefined && i === 1 && st.role === 'leader' && st.term >= 2 ? { ...e, data: new Uint8Array([7]) } : e;
          },
        })),
      },
    });
    expect(f.invariant).toBe('leader completeness');
  });

  it('leader append-only: a leader whose log gets shorter', async () => {
    let calls = 0;
    const f = await failureOf({
      ...run,
      cluster: {
        createCore: breakNode(null, (core) => ({
          status: (): RaftStatus => {
            const st = core.status();
            return st.role === 'leader' && st.lastIndex > 3 && ++calls % 2 === 0 ? { ...st, lastIndex: (st.lastIndex - 1) as typeof st.lastIndex } : st;
          },
        })),
      },
    });
    expect(f.invariant).toBe('leader append-only');
  });

  it('committed entries are final: a node whose committed entry differs from the one committed before', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        createCore: breakNode('n2', (core) => ({
          entryAt: (i) => {
            const e = core.entryAt(i);
            return e !== undefined && i === 3 ? { ...e, term: (e.term + 1) as typeof e.term } : e;
          },
        })),
      },
    });
    // The node's own apply of the real entry may be what notices first.
    expect(['committed entries are final', 'state machine safety']).toContain(f.invariant);
  });

  it('one vote per term: a node that grants every vote it is asked for', async () => {
    // Without pre-vote and check-quorum, split votes (two candidates in one term) come often.
    const f = await failureOf({
      ...run,
      nodes: 5,
      profile: 'chaos',
      cluster: {
        raft: { preVote: false, checkQuorum: false },
        createCore: breakNode('n4', (core) => {
          const extra: Message[] = [];
          return {
            step: (m: Message) => {
              core.step(m);
              if (m.type === 'vote' && !m.preVote) {
                extra.push({ type: 'voteResponse', from: m.to, to: m.from, term: m.term, preVote: false, granted: true });
              }
            },
            hasReady: () => extra.length > 0 || core.hasReady(),
            ready: (): Ready => {
              const rd = core.ready();
              const granted = extra.splice(0);
              return { ...rd, messages: [...rd.messages, ...granted], messagesAfterSync: [...rd.messagesAfterSync, ...granted] };
            },
          };
        }),
      },
    }, 20);
    expect(['one vote per term', 'election safety']).toContain(f.invariant);
  });

  it('acknowledge only what is on disk: a node that acknowledges appends it has not persisted', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        createCore: breakNode(null, (core) => ({
          ready: (): Ready => {
            const rd = core.ready();
            const inflate = (ms: readonly Message[]): Message[] => ms.map((m) => (m.type === 'appendResponse' && m.success ? { ...m, index: (m.index + 3) as typeof m.index } : m));
            return { ...rd, messages: inflate(rd.messages), messagesAfterSync: inflate(rd.messagesAfterSync) };
          },
        })),
      },
    });
    expect(f.invariant).toBe('acknowledge only what is on disk');
  });

  it('acknowledge only what is on disk: a core that says no write needs a sync (its answers leave before the write is durable)', async () => {
    const f = await failureOf({
      ...run,
      profile: 'crashes',
      cluster: { createCore: breakNode(null, (core) => ({ ready: (): Ready => ({ ...core.ready(), mustSync: false }) })) },
    });
    expect(['acknowledge only what is on disk', 'acknowledge only what the marker covers', 'vote only what the marker holds', 'restart durability']).toContain(f.invariant);
  });

  it('restart durability: a node whose appended entries are never made durable loses what it applied', async () => {
    // Entries written without a sync are lost in a crash (and acknowledged too early): the checker that sends first
    // catches it unless no acknowledgement was sent, and then the restart does.
    const f = await failureOf({
      ...run,
      nodes: 1,
      profile: 'crashes',
      cluster: { createCore: breakNode(null, (core) => ({ ready: (): Ready => ({ ...core.ready(), mustSync: false }) })) },
    }, 10);
    expect(f.invariant).toBe('restart durability');
  });

  it('a leader that applies, while its write is on disk, entries no quorum holds yet is caught', async () => {
    // Its own log's newest entries, handed out as committed: a crash or a new leader takes them back.
    const f = await failureOf({
      ...run,
      profile: 'crashes',
      cluster: {
        createCore: breakNode(null, (core) => ({
          takeWhileWriting: (applied) => {
            const w = core.takeWhileWriting(applied);
            const st = core.status();
            if (st.role !== 'leader' || st.lastIndex <= applied) return w;
            const early: Entry[] = [];
            for (let i = applied + 1; i <= st.lastIndex; i++) early.push(core.entryAt(logIndex(i))!);
            return { ...w, committedEntries: early };
          },
        })),
      },
    }, 30);
    expect(['restart durability', 'state machine safety', 'applied exactly once', 'linearizable reads', 'committed entries are final']).toContain(f.invariant);
  });

  it('one vote per term: a voter that answers before its vote is durable votes twice in a term after a crash', async () => {
    const f = await failureOf({
      ...run,
      nodes: 5,
      profile: 'crashes',
      cluster: {
        raft: { preVote: false },
        diskLatencyUnitsMin: 50,
        diskLatencyUnitsMax: 200,
        createCore: breakNode(null, (core) => ({
          ready: (): Ready => {
            const rd = core.ready();
            return { ...rd, messagesBeforeSync: rd.messages, messagesAfterSync: [] };
          },
        })),
      },
    }, 30);
    // The marker's check (a granted vote the marker does not hold) usually sees it first, before the crash.
    expect(['one vote per term', 'vote only what the marker holds', 'election safety', 'acknowledge only what is on disk', 'restart durability', 'leader completeness']).toContain(f.invariant);
  });

  it('liveness: nodes that never campaign', async () => {
    const f = await failureOf({ ...run, steps: 20, livenessTicksMax: 100, cluster: { raft: { electionTicks: 100_000 } } });
    expect(f.invariant).toBe('liveness');
  });

  it('applied exactly once: a state machine without client sessions applies a retried command twice', async () => {
    const f = await failureOf({
      ...run,
      profile: 'lossy',
      cluster: {
        createStateMachine: (): SimStateMachine => {
          const effects = new Map<string, number>();
          return {
            apply: (e) => {
              const id = e.type === 'command' ? decodeCommand(e.data) : null;
              if (id === null) return null;
              effects.set(commandKey(id), (effects.get(commandKey(id)) ?? 0) + 1);
              return { ...id, effective: true };
            },
            effectCount: (id) => effects.get(commandKey(id)) ?? 0,
            digest: () => String(effects.size),
            snapshot: () => new TextEncoder().encode(JSON.stringify([...effects])),
            restore: (data) => {
              effects.clear();
              for (const [k, v] of JSON.parse(new TextDecoder().decode(data)) as [string, number][]) effects.set(k, v);
            },
          };
        },
      },
    }, 20);
    expect(f.invariant).toBe('applied exactly once');
  });

  it('snapshot state: a state machine whose restored snapshots differ from the state they were taken of', async () => {
    class BrokenRestore extends SessionStateMachine {
      override restore(data: Uint8Array): void {
        super.restore(data);
        super.apply({ term: 1 as never, index: 1 as never, type: 'command', data: new Uint8Array([0, 0, 0, 99, 0, 0, 0, 1]) });
      }
    }
    const f = await failureOf({ ...run, profile: 'crashes', cluster: { snapshots: { everyEntries: 3, retainEntries: 0 }, createStateMachine: () => new BrokenRestore() } });
    expect(f.invariant).toBe('snapshot state');
  });

  it('membership: a node outside the configuration that campaigns', async () => {
    const f = await failureOf({
      ...run,
      cluster: {
        spares: 1,
        createCore: breakNode('n4', (core) => ({
          status: (): RaftStatus => ({ ...core.status(), role: 'precandidate' }),
        })),
      },
    });
    expect(f.invariant).toBe('membership');
  });

  it('membership: a leader that keeps leading after its own removal commits', async () => {
    const { c, log } = newCluster(3, 31, {
      createCore: breakNode('n1', (core) => ({
        status: (): RaftStatus => {
          const st = core.status();
          return st.voters.length > 0 && !st.voters.includes(st.id) ? { ...st, role: 'leader' } : st;
        },
      })),
    });
    await electLeader(c);
    await one(c, log, cmd(), 3);
    const leader = c.leader()!;
    if (leader !== 'n1') c.transferLeadership(leader, nodeId('n1'));
    expect(await c.runUntil(() => c.leader() === 'n1', 30)).toBe(true);
    await c.runTicks(3);
    expect(c.proposeConfChange(nodeId('n1'), { type: 'remove', nodeId: nodeId('n1') })?.ok).toBe(true);
    let violation: unknown = null;
    try {
      await c.runTicks(20);
    } catch (err) {
      violation = err;
    }
    expect(violation).toBeInstanceOf(SafetyViolation);
    expect((violation as SafetyViolation).invariant).toBe('membership');
  });
});
