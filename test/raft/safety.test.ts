// Randomized safety check of the whole core: clusters under partitions, loss, reordering, duplication and crashes,
// checked after every step against the Raft paper's safety properties (Figure 3), then healed to check progress.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/lib/random.js';
import type { Entry, Message } from '../../src/raft/index.js';
import { SimNode, dec, enc, ids, makeConfig, type ConfigOverrides, type Disk } from './harness.js';

interface Scenario {
  seed: number;
  size: number;
  overrides: ConfigOverrides;
  steps: number;
}

class Cluster {
  readonly nodes = new Map<string, SimNode>();
  private queue: Message[] = [];
  private readonly down = new Set<string>();
  private partition: Set<string> | null = null;
  private readonly leaders = new Map<number, string>();
  /** index -> the entry every node must apply there (state machine safety). */
  private readonly applied = new Map<number, Entry>();
  private proposals = 0;

  constructor(
    private readonly s: Scenario,
    private readonly rnd: SeededRandom,
  ) {
    for (const id of ids(s.size)) this.nodes.set(id, new SimNode(makeConfig(id, ids(s.size), rnd.int(1e9), s.overrides)));
  }

  private cut(from: string, to: string): boolean {
    if (this.down.has(from) || this.down.has(to)) return true;
    return this.partition !== null && this.partition.has(from) !== this.partition.has(to);
  }

  private drainAll(): void {
    for (const [id, node] of this.nodes) {
      if (this.down.has(id)) continue;
      const before = node.applied.length;
      for (const m of node.drain()) this.queue.push(m);
      this.checkNode(id, node, before);
    }
  }

  private checkNode(id: string, node: SimNode, appliedBefore: number): void {
    const st = node.raft.status();
    if (st.role === 'leader') {
      const known = this.leaders.get(st.term);
      expect(known === undefined || known === id, `two leaders in term ${st.term}: ${known} and ${id}`).toBe(true);
      if (known === undefined) {
        this.leaders.set(st.term, id);
        // Leader completeness: a new leader holds every entry anyone has applied.
        for (const [index, e] of this.applied) expect(node.raft.entryAt(e.index)?.term, `leader ${id} lacks ${index}`).toBe(e.term);
      }
    }
    for (let i = appliedBefore; i < node.applied.length; i++) {
      const e = node.applied[i]!;
      expect(e.index, `${id} applied out of order`).toBe(i + 1);
      const first = this.applied.get(e.index);
      if (first === undefined) this.applied.set(e.index, e);
      else expect([e.term, dec(e.data)], `${id} applied a different entry at ${e.index}`).toEqual([first.term, dec(first.data)]);
    }
  }

  /** Log matching: two logs holding the same term at an index hold the same entries up to it. */
  checkLogMatching(): void {
    const logs = [...this.nodes.values()].map((n) => n.disk.entries);
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const la = logs[a]!;
        const lb = logs[b]!;
        let i = Math.min(la.length, lb.length) - 1;
        while (i >= 0 && la[i]!.term !== lb[i]!.term) i--;
        for (; i >= 0; i--) expect([la[i]!.term, dec(la[i]!.data)]).toEqual([lb[i]!.term, dec(lb[i]!.data)]);
      }
    }
  }

  private deliverOne(): void {
    if (this.queue.length === 0) return;
    // Mostly in order, sometimes reordered, lost or duplicated.
    const reorder = this.rnd.next() < 0.1;
    const i = reorder ? this.rnd.int(this.queue.length) : 0;
    const m = this.queue.splice(i, 1)[0]!;
    const fate = this.rnd.next();
    if (fate < 0.05 || this.cut(m.from, m.to)) return;
    if (fate > 0.97) this.queue.push(m);
    this.nodes.get(m.to)!.raft.step(m);
  }

  private restart(id: string): void {
    const old = this.nodes.get(id)!;
    const disk: Disk = { hardState: old.disk.hardState, entries: old.disk.entries.slice() };
    this.nodes.set(id, new SimNode(makeConfig(id, ids(this.s.size), this.rnd.int(1e9), this.s.overrides), disk));
  }

  private chaos(): void {
    const r = this.rnd.next();
    const all = ids(this.s.size);
    if (r < 0.3) {
      this.partition = null;
      this.down.clear();
    } else if (r < 0.6) {
      this.partition = new Set(all.filter(() => this.rnd.next() < 0.5));
    } else if (r < 0.8) {
      const id = all[this.rnd.int(all.length)]!;
      this.down.add(id);
      this.restart(id);
    } else {
      this.down.clear();
    }
  }

  step(): void {
    const r = this.rnd.next();
    if (r < 0.55) {
      this.deliverOne();
    } else if (r < 0.8) {
      for (const [id, n] of this.nodes) if (!this.down.has(id)) n.raft.tick();
    } else if (r < 0.97) {
      const live = [...this.nodes.entries()].filter(([id]) => !this.down.has(id));
      const [, n] = live[this.rnd.int(live.length)] ?? [];
      if (this.rnd.next() < 0.8) n?.raft.propose([enc(`p${++this.proposals}`), enc(`p${++this.proposals}`)]);
      else n?.raft.readIndex(`r${this.proposals}`);
    } else {
      this.chaos();
    }
    this.drainAll();
  }

  private deliverAll(): void {
    for (let steps = 0; steps < 100_000; steps++) {
      this.drainAll();
      const m = this.queue.shift();
      if (m === undefined) return;
      this.nodes.get(m.to)!.raft.step(m);
    }
    throw new Error('the network did not go quiet');
  }

  /** Heals everything and runs until every node has applied a final proposal; returns the rounds it took. */
  converge(): number {
    this.partition = null;
    this.down.clear();
    const marker = `final-${this.s.seed}`;
    let proposedTerm = -1;
    for (let round = 0; round < 500; round++) {
      for (const n of this.nodes.values()) n.raft.tick();
      this.deliverAll();
      const leader = [...this.nodes.values()].find((n) => n.raft.status().role === 'leader');
      const term = leader?.raft.status().term ?? -1;
      // A proposal may die with its leader: propose again to each new leader until it is applied.
      if (leader !== undefined && term !== proposedTerm && leader.raft.propose([enc(marker)]).ok) proposedTerm = term;
      if ([...this.nodes.values()].every((n) => n.appliedCommands().includes(marker))) return round;
    }
    throw new Error(`the cluster did not converge (seed ${this.s.seed})`);
  }
}

const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  size: fc.constantFrom(3, 5),
  overrides: fc.record({ preVote: fc.boolean(), checkQuorum: fc.boolean(), inflightAppendsMax: fc.constantFrom(1, 4, 256), entriesPerAppendMax: fc.constantFrom(1, 3, 1024) }),
  steps: fc.integer({ min: 200, max: 1500 }),
});

describe('safety under faults', () => {
  it('under partitions, loss, reordering, duplication and crashes there is at most one leader per term, logs match, every node applies the same entries in the same order, new leaders hold every applied entry, and a healed cluster makes progress', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const cluster = new Cluster(s, new SeededRandom(s.seed));
        for (let i = 0; i < s.steps; i++) {
          cluster.step();
          if (i % 50 === 0) cluster.checkLogMatching();
        }
        cluster.checkLogMatching();
        cluster.converge();
        cluster.checkLogMatching();
      }),
      { numRuns: 60 },
    );
  });
});
