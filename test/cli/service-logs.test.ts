// LinePrefixer: `service logs` prints whole lines, each with its replica's prefix, however the bytes were cut.
// nextFollow: `service logs -f` follows each attempt of a replica once it runs, prefixed with that attempt's worker,
// and a cut stream of an attempt again after a backoff.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinePrefixer, nextFollow, type ReplicaFollow } from '../../src/cli/service-logs.js';
import { followTailLines } from '../../src/cli/tasks.js';
import type { ReplicaView } from '../../src/contracts/service-model.js';

describe('LinePrefixer', () => {
  it('prefixes each whole line and keeps a partial one for the next chunk', () => {
    const p = new LinePrefixer('t1@w1 | ');
    expect(p.push(Buffer.from('one\ntw'))).toBe('t1@w1 | one\n');
    expect(p.push(Buffer.from('o\n\nthree'))).toBe('t1@w1 | two\nt1@w1 | \n');
    expect(p.flush()).toBe('t1@w1 | three\n');
    expect(p.flush()).toBe('');
  });

  it('cut anywhere (a multi-byte character included), the output is the same', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom('a', 'é', '€', '\n', ' ', '🙂')), { maxLength: 40 }), fc.array(fc.nat(200), { maxLength: 5 }), (parts, cuts) => {
      const bytes = Buffer.from(parts.join(''));
      const whole = new LinePrefixer('> ');
      const expected = whole.push(bytes) + whole.flush();
      const p = new LinePrefixer('> ');
      let out = '';
      let at = 0;
      for (const cut of [...cuts].sort((a, b) => a - b).map((c) => Math.min(c, bytes.length))) {
        out += p.push(bytes.subarray(at, Math.max(at, cut)));
        at = Math.max(at, cut);
      }
      out += p.push(bytes.subarray(at)) + p.flush();
      expect(out).toBe(expected);
      expect(out.split('\n').filter((l) => l !== '').every((l) => l.startsWith('> '))).toBe(true);
    }));
  });
});

describe('nextFollow', () => {
  const replica = (o: Partial<ReplicaView>): ReplicaView => ({
    taskId: 't1', version: 1, state: 'running', desiredState: 'run', draining: false, health: null, workerId: 'w1', attempt: 1, ports: [], failure: null, ...o,
  });

  it('picks a crash-looping replica up again for each attempt, on the worker of that attempt, whole', () => {
    // A replica running when first seen: its past bounded by --tail.
    expect(nextFollow(replica({}), undefined, 0)).toEqual({ attempt: 1, prefix: 't1@w1 | ', tailLines: 0, resume: false });
    let known: ReplicaFollow = { attempt: 1, streaming: true };
    expect(nextFollow(replica({}), known, 0)).toBeNull();
    // Its stream ended (the container exited) before the record says so: the same attempt is not followed twice.
    known = { attempt: 1, streaming: false };
    expect(nextFollow(replica({}), known, 0)).toBeNull();
    expect(nextFollow(replica({ state: 'pending', workerId: null, attempt: 2 }), known, 0)).toBeNull();
    expect(nextFollow(replica({ state: 'scheduled', workerId: 'w2', attempt: 2 }), known, 0)).toBeNull();
    // Its next attempt runs, on another worker: followed from its start, prefixed with that worker.
    expect(nextFollow(replica({ workerId: 'w2', attempt: 2 }), known, 0)).toEqual({ attempt: 2, prefix: 't1@w2 | ', tailLines: followTailLines, resume: false });
    // An attempt missed between two looks (it started and ended): the latest one is followed.
    expect(nextFollow(replica({ workerId: 'w3', attempt: 4 }), { attempt: 2, streaming: false }, 0)).toMatchObject({ attempt: 4, prefix: 't1@w3 | ' });
  });

  it('a replica seen pending is followed once it runs, prefixed with its worker (not "-")', () => {
    const pending = replica({ state: 'pending', workerId: null });
    expect(nextFollow(pending, undefined, 10)).toBeNull();
    // The follower remembers it as seen, nothing followed yet.
    expect(nextFollow(replica({ workerId: 'w2' }), { attempt: 0, streaming: false }, 10)).toEqual({ attempt: 1, prefix: 't1@w2 | ', tailLines: followTailLines, resume: false });
  });

  it('a cut stream of a running (or ended) attempt is opened again once its backoff is over, not while the replica is lost', () => {
    const cut: ReplicaFollow = { attempt: 1, streaming: false, resumeAtMs: 5000 };
    expect(nextFollow(replica({}), cut, 0, 4999)).toBeNull();
    expect(nextFollow(replica({}), cut, 0, 5000)).toEqual({ attempt: 1, prefix: 't1@w1 | ', tailLines: followTailLines, resume: true });
    // Its container exited meanwhile: what it wrote after the cut is still to be had.
    expect(nextFollow(replica({ state: 'failed' }), cut, 0, 5000)).toMatchObject({ attempt: 1, resume: true });
    // Lost (its worker away): a follow would wait for the next attempt; asked again at a later look.
    expect(nextFollow(replica({ state: 'lost' }), cut, 0, 5000)).toBeNull();
    // A new attempt instead: followed whole, as any new attempt.
    expect(nextFollow(replica({ workerId: 'w2', attempt: 2 }), cut, 0, 5000)).toEqual({ attempt: 2, prefix: 't1@w2 | ', tailLines: followTailLines, resume: false });
    // One open, or one ended (its container exited), is not opened again.
    expect(nextFollow(replica({}), { ...cut, streaming: true }, 0, 5000)).toBeNull();
    expect(nextFollow(replica({}), { ...cut, resumeAtMs: null }, 0, 5000)).toBeNull();
  });

  it('whatever the views, never two streams of a replica at once, and each attempt at most once', () => {
    const view = fc.record({ attempt: fc.integer({ min: 1, max: 6 }), state: fc.constantFrom('pending', 'scheduled', 'running', 'lost'), workerId: fc.constantFrom(null, 'w1', 'w2') });
    fc.assert(fc.property(fc.array(fc.tuple(view, fc.boolean()), { maxLength: 30 }), (looks) => {
      let known: ReplicaFollow | undefined;
      const opened: number[] = [];
      for (const [v, ended] of looks) {
        // A look after the open stream may have ended.
        if (known !== undefined && ended) known = { ...known, streaming: false };
        const next = nextFollow(replica(v), known, 5);
        if (next === null) {
          known ??= { attempt: 0, streaming: false };
          continue;
        }
        expect(known?.streaming ?? false).toBe(false);
        expect(next.prefix).toBe(`t1@${v.workerId} | `);
        opened.push(next.attempt);
        known = { attempt: next.attempt, streaming: true };
      }
      expect(opened).toEqual([...new Set(opened)].sort((a, b) => a - b));
    }));
  });
});
