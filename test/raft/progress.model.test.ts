// Model-based test of a leader's per-follower Progress: random sends, acknowledgements, rejections and heartbeat answers,
// checked against a plain model of probe/replicate flow control after every step.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Inflights, Progress } from '../../src/raft/progress.js';

interface Model {
  leaderLast: number;
  match: number;
  next: number;
  state: 'probe' | 'replicate';
  probeSent: boolean;
  inflight: number[];
  readonly capacity: number;
}

const pick = (frac: number, lo: number, hi: number): number => lo + Math.min(hi - lo, Math.floor(frac * (hi - lo + 1)));
const paused = (m: Model): boolean => (m.state === 'probe' ? m.probeSent : m.inflight.length === m.capacity);

function becomeProbe(m: Model): void {
  if (m.state === 'replicate') m.next = m.match + 1;
  m.state = 'probe';
  m.probeSent = false;
  m.inflight = [];
}

function checkAgainstModel(m: Model, pr: Progress): void {
  expect({ match: pr.match, next: pr.next, state: pr.state, probeSent: pr.probeSent, inflight: pr.inflights.count }).toEqual({
    match: m.match,
    next: m.next,
    state: m.state,
    probeSent: m.probeSent,
    inflight: m.inflight.length,
  });
  expect(pr.isPaused()).toBe(paused(m));
  expect(pr.next).toBeGreaterThan(pr.match);
  expect(pr.inflights.count).toBeLessThanOrEqual(m.capacity);
  expect(pr.match).toBeLessThanOrEqual(m.leaderLast);
  expect(pr.next).toBeLessThanOrEqual(m.leaderLast + 1);
  if (m.state === 'probe') expect(m.inflight).toEqual([]);
}

type ProgressCommand = fc.Command<Model, Progress>;

class Propose implements ProgressCommand {
  constructor(readonly count: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, pr: Progress): void {
    m.leaderLast += this.count;
    checkAgainstModel(m, pr);
  }
  toString(): string {
    return `propose(${this.count})`;
  }
}

/** The leader sends what flow control allows: up to countMax entries from next (an empty append when none). */
class Send implements ProgressCommand {
  constructor(readonly countMax: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, pr: Progress): void {
    if (pr.isPaused()) {
      expect(paused(m)).toBe(true);
      return;
    }
    const count = Math.max(0, Math.min(this.countMax, m.leaderLast - m.next + 1));
    const last = m.next - 1 + count;
    pr.sentEntries(count, last);
    if (m.state === 'probe') {
      m.probeSent = true;
    } else if (count > 0) {
      m.next = last + 1;
      m.inflight.push(last);
    }
    checkAgainstModel(m, pr);
  }
  toString(): string {
    return `send(${this.countMax})`;
  }
}

/** A successful answer for an index the leader has sent (or a stale one below match). */
class Ack implements ProgressCommand {
  constructor(readonly frac: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, pr: Progress): void {
    const index = pick(this.frac, 0, m.next - 1);
    const updated = pr.maybeUpdate(index);
    expect(updated).toBe(index > m.match);
    if (updated || (pr.state === 'probe' && pr.match === index)) {
      if (pr.state === 'probe') pr.becomeReplicate();
    }
    const wasProbe = m.state === 'probe';
    if (index > m.match) {
      m.match = index;
      m.probeSent = false;
    }
    m.next = Math.max(m.next, index + 1);
    m.inflight = m.inflight.filter((x) => x > index);
    if (wasProbe && m.match === index) {
      m.state = 'replicate';
      m.next = m.match + 1;
      m.probeSent = false;
      m.inflight = [];
    }
    checkAgainstModel(m, pr);
  }
  toString(): string {
    return `ack(${this.frac.toFixed(2)})`;
  }
}

/** A rejection of the append whose prevLogIndex was `rejected`, with the leader's hint for the next probe. */
class Reject implements ProgressCommand {
  constructor(
    readonly current: boolean,
    readonly frac: number,
    readonly hintFrac: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, pr: Progress): void {
    const rejected = this.current && m.state === 'probe' ? m.next - 1 : pick(this.frac, 0, m.next - 1);
    const hint = pick(this.hintFrac, 0, rejected + 1);
    const stale = m.state === 'replicate' ? rejected <= m.match : rejected !== m.next - 1;
    expect(pr.maybeDecrTo(rejected, hint)).toBe(!stale);
    if (!stale) {
      becomeProbe(m);
      m.next = Math.max(m.match + 1, Math.min(hint, rejected));
    }
    checkAgainstModel(m, pr);
  }
  toString(): string {
    return `reject(${this.current}, ${this.frac.toFixed(2)}, ${this.hintFrac.toFixed(2)})`;
  }
}

/** What the leader does with a heartbeat answer: resume probing, and free a slot of a full window. */
class HeartbeatAnswer implements ProgressCommand {
  check(): boolean {
    return true;
  }
  run(m: Model, pr: Progress): void {
    pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    m.probeSent = false;
    if (m.state === 'replicate' && m.inflight.length === m.capacity) m.inflight.shift();
    checkAgainstModel(m, pr);
  }
  toString(): string {
    return 'heartbeatAnswer';
  }
}

const frac = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const commands = [
  fc.integer({ min: 1, max: 6 }).map((n) => new Propose(n)),
  fc.integer({ min: 1, max: 3 }).map((n) => new Send(n)),
  frac.map((f) => new Ack(f)),
  fc.tuple(fc.boolean(), frac, frac).map(([c, f, h]) => new Reject(c, f, h)),
  fc.constant(new HeartbeatAnswer()),
];

describe('Progress against a flow-control model', () => {
  it('next stays above match, the inflight window never exceeds its bound, probe sends one append at a time, and stale rejections change nothing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 20 }), fc.commands(commands, { maxCommands: 80 }), (capacity, start, cmds) => {
        const setup = (): { model: Model; real: Progress } => ({
          model: { leaderLast: start - 1, match: 0, next: start, state: 'probe', probeSent: false, inflight: [], capacity },
          real: new Progress(start, capacity),
        });
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 400 },
    );
  });

  it('the inflight ring buffer frees acknowledged appends in order, whatever the wrap-around', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 })), { maxLength: 60 }), (capacity, ops) => {
        const inf = new Inflights(capacity);
        const model: number[] = [];
        let last = 0;
        for (const [add, step] of ops) {
          if (add && model.length < capacity) {
            last += 1 + step;
            inf.add(last);
            model.push(last);
          } else {
            const to = (model[0] ?? last) + step - 1;
            inf.freeLE(to);
            while (model.length > 0 && model[0]! <= to) model.shift();
          }
          expect(inf.count).toBe(model.length);
          expect(inf.full()).toBe(model.length === capacity);
        }
      }),
    );
  });

  it('with a follower that answers in order but loses some messages, heartbeats bring match up to the leader\'s last index', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.boolean()), { minLength: 1, maxLength: 40 }), (capacity, rounds) => {
        const pr = new Progress(1, capacity);
        let leaderLast = 0;
        let followerLast = 0;
        const send = (lose: boolean): void => {
          while (!pr.isPaused()) {
            const prev = pr.next - 1;
            const count = Math.min(2, leaderLast - prev);
            pr.sentEntries(count, prev + count);
            if (!lose) deliver(prev, count);
            if (count === 0 || pr.state === 'probe') break;
          }
        };
        const deliver = (prev: number, count: number): void => {
          if (prev > followerLast) {
            if (pr.maybeDecrTo(prev, followerLast + 1)) send(false);
            return;
          }
          followerLast = Math.max(followerLast, prev + count);
          if (pr.maybeUpdate(prev + count) || (pr.state === 'probe' && pr.match === prev + count)) {
            if (pr.state === 'probe') pr.becomeReplicate();
          }
        };
        for (const [n, lose] of rounds) {
          leaderLast += n;
          send(lose);
        }
        for (let beat = 0; beat < 4 * (capacity + leaderLast) + 4 && pr.match < leaderLast; beat++) {
          pr.probeSent = false;
          if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
          if (pr.match < leaderLast) {
            // A lagging follower gets an append even if empty: it reveals a gap left by lost messages.
            if (!pr.isPaused() && pr.next > leaderLast) {
              pr.sentEntries(0, pr.next - 1);
              deliver(pr.next - 1, 0);
            }
            send(false);
          }
        }
        expect(pr.match).toBe(leaderLast);
      }),
    );
  });
});
