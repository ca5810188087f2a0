// Model-based test of RaftLog: random sequences of follower appends, leader appends, commits, applies and persists,
// checked against a plain array after every step.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { logIndex, term } from '../../src/lib/ids.js';
import { RaftLog } from '../../src/raft/log.js';
import type { Entry } from '../../src/raft/types.js';

interface Model {
  /** terms[i] is the term of index i + 1. */
  terms: number[];
  committed: number;
  applied: number;
  stable: number;
}

const mkEntry = (index: number, t: number): Entry => ({
  index: logIndex(index),
  term: term(t),
  type: 'command',
  // Same index and term means the same entry, as in Raft.
  data: new Uint8Array([index & 0xff, t & 0xff, 1 + (index % 3)]),
});

const lastTerm = (m: Model): number => m.terms.at(-1) ?? 0;
const termAt = (m: Model, i: number): number | undefined => (i === 0 ? 0 : m.terms[i - 1]);
const pick = (frac: number, lo: number, hi: number): number => lo + Math.min(hi - lo, Math.floor(frac * (hi - lo + 1)));

function checkAgainstModel(m: Model, log: RaftLog): void {
  expect(log.lastIndex()).toBe(m.terms.length);
  expect(log.lastTerm()).toBe(lastTerm(m));
  expect(log.committed).toBe(m.committed);
  expect(log.applied).toBe(m.applied);
  expect(log.stableIndex()).toBe(m.stable);
  expect(log.hasUnstable()).toBe(m.stable < m.terms.length);
  expect(log.hasNextCommitted()).toBe(m.committed > m.applied);
  for (let i = 0; i <= m.terms.length + 1; i++) expect(log.term(i)).toBe(termAt(m, i));
  expect(m.applied <= m.committed && m.committed <= m.terms.length).toBe(true);
  for (let i = 1; i < m.terms.length; i++) expect(m.terms[i]!).toBeGreaterThanOrEqual(m.terms[i - 1]!);
}

type LogCommand = fc.Command<Model, RaftLog>;

/** A follower receives an append: prev chosen at or above the commit index, matching or not, then entries. */
class FollowerAppend implements LogCommand {
  constructor(
    readonly prevFrac: number,
    readonly matching: boolean,
    readonly bumps: number[],
    readonly commitFrac: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, log: RaftLog): void {
    const prev = pick(this.prevFrac, m.committed, m.terms.length);
    const prevTerm = termAt(m, prev)! + (this.matching ? 0 : 1);
    let t = prevTerm;
    const entries = this.bumps.map((b, i) => mkEntry(prev + 1 + i, (t += b)));
    const lastNew = prev + entries.length;
    const commit = pick(this.commitFrac, 0, lastNew + 3);
    const got = log.maybeAppend(prev, prevTerm, commit, entries);
    if (!this.matching) {
      expect(got).toBe(-1);
    } else {
      expect(got).toBe(lastNew);
      const conflictAt = entries.findIndex((e) => termAt(m, e.index) !== e.term);
      if (conflictAt >= 0) {
        const first = entries[conflictAt]!.index;
        m.terms.length = first - 1;
        for (const e of entries.slice(conflictAt)) m.terms.push(e.term);
        m.stable = Math.min(m.stable, first - 1);
      }
      m.committed = Math.max(m.committed, Math.min(commit, lastNew));
    }
    checkAgainstModel(m, log);
  }
  toString(): string {
    return `followerAppend(${this.prevFrac.toFixed(2)}, ${this.matching}, [${this.bumps.join(",")}], ${this.commitFrac.toFixed(2)})`;
  }
}

class LeaderAppend implements LogCommand {
  constructor(
    readonly count: number,
    readonly bump: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, log: RaftLog): void {
    const t = lastTerm(m) + this.bump;
    for (let i = 0; i < this.count; i++) {
      log.push(mkEntry(m.terms.length + 1, t));
      m.terms.push(t);
    }
    checkAgainstModel(m, log);
  }
  toString(): string {
    return `leaderAppend(${this.count}, +${this.bump})`;
  }
}

class CommitTo implements LogCommand {
  constructor(readonly frac: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, log: RaftLog): void {
    const index = pick(this.frac, 0, m.terms.length);
    expect(log.commitTo(index)).toBe(index > m.committed);
    m.committed = Math.max(m.committed, index);
    checkAgainstModel(m, log);
  }
  toString(): string {
    return `commitTo(${this.frac.toFixed(2)})`;
  }
}

class Apply implements LogCommand {
  constructor(
    readonly countMax: number,
    readonly bytesMax: number,
  ) {}
  check(m: Model): boolean {
    return m.committed > m.applied;
  }
  run(m: Model, log: RaftLog): void {
    const got = log.nextCommitted(this.countMax, this.bytesMax);
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.length).toBeLessThanOrEqual(Math.min(this.countMax, m.committed - m.applied));
    const bytes = got.reduce((n, e) => n + e.data.byteLength, 0);
    expect(got.length === 1 || bytes <= this.bytesMax).toBe(true);
    expect(got.map((e) => [e.index, e.term])).toEqual(got.map((_, i) => [m.applied + 1 + i, m.terms[m.applied + i]]));
    log.appliedTo(got.at(-1)!.index);
    m.applied = got.at(-1)!.index;
    checkAgainstModel(m, log);
  }
  toString(): string {
    return `apply(${this.countMax}, ${this.bytesMax})`;
  }
}

class Persist implements LogCommand {
  check(): boolean {
    return true;
  }
  run(m: Model, log: RaftLog): void {
    const unstable = log.unstableEntries();
    expect(unstable.map((e) => [e.index, e.term])).toEqual(m.terms.slice(m.stable).map((t, i) => [m.stable + 1 + i, t]));
    const last = unstable.at(-1);
    if (last !== undefined) log.stableTo(last.index, last.term);
    m.stable = m.terms.length;
    checkAgainstModel(m, log);
  }
  toString(): string {
    return 'persist';
  }
}

/** The binary searches agree with linear scans of the model. */
class TermSearch implements LogCommand {
  constructor(
    readonly termFrac: number,
    readonly boundFrac: number,
  ) {}
  check(m: Model): boolean {
    return m.terms.length > 0;
  }
  run(m: Model, log: RaftLog): void {
    const bound = pick(this.boundFrac, 1, m.terms.length);
    const t = pick(this.termFrac, 0, lastTerm(m) + 1);
    let want = 0;
    for (let i = 1; i <= bound; i++) if (m.terms[i - 1]! <= t) want = i;
    expect(log.lastIndexAtOrBelowTerm(t, bound)).toBe(want);
    const tb = m.terms[bound - 1]!;
    expect(log.firstIndexOfTerm(tb, bound)).toBe(m.terms.indexOf(tb) + 1);
  }
  toString(): string {
    return `termSearch(${this.termFrac.toFixed(2)}, ${this.boundFrac.toFixed(2)})`;
  }
}

const frac = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const commands = [
  fc
    .tuple(frac, fc.boolean(), fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 6 }), frac)
    .map(([p, mt, b, c]) => new FollowerAppend(p, mt, b, c)),
  fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 2 })).map(([n, b]) => new LeaderAppend(n, b)),
  frac.map((f) => new CommitTo(f)),
  fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 })).map(([n, b]) => new Apply(n, b)),
  fc.constant(new Persist()),
  fc.tuple(frac, frac).map(([a, b]) => new TermSearch(a, b)),
];

describe('RaftLog against an array model', () => {
  it('appends, truncations, commits, applies and persists keep the log equal to the model, terms never decrease, and applied <= commit <= last index', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60 }), (cmds) => {
        const setup = (): { model: Model; real: RaftLog } => ({
          model: { terms: [], committed: 0, applied: 0, stable: 0 },
          real: new RaftLog([], logIndex(0), logIndex(0)),
        });
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 400 },
    );
  });

  it('a log rebuilt from persisted entries holds them all as stable', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 20 }), frac, (bumps, cf) => {
        let t = 1;
        const entries = bumps.map((b, i) => mkEntry(i + 1, (t += b)));
        const commit = pick(cf, 0, entries.length);
        const log = new RaftLog(entries, logIndex(commit), logIndex(0));
        checkAgainstModel({ terms: entries.map((e) => e.term), committed: commit, applied: 0, stable: entries.length }, log);
      }),
    );
  });

  it('truncating at or below the commit index is refused by an assertion', () => {
    const log = new RaftLog([mkEntry(1, 1), mkEntry(2, 1)], logIndex(2), logIndex(0));
    expect(() => log.append([mkEntry(2, 2)])).toThrow(/committed/);
    expect(() => log.maybeAppend(1, 1, 0, [mkEntry(2, 2)])).toThrow(/committed/);
    expect(() => log.commitTo(3)).toThrow(/beyond the last index/);
  });
});
