// The linearizability checker on histories whose verdict is known: stale reads, lost writes, compare-and-set against
// the wrong version, timeouts that did or did not take effect, concurrency; and a property: any history an atomic
// register produces, whatever the real-time overlaps, is linearizable.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkOperations, checkRegisterHistories, explainIllegal, registerModel, resolveVersions, type RegisterInput, type RegisterOperation,
  type RegisterOutput,
} from './linearizability.js';

/** A history builder: times are [call, return]; `null` as the return means the outcome is unknown. */
function history() {
  const ops: RegisterOperation[] = [];
  const add = (input: RegisterInput, output: RegisterOutput | null, callMs: number, returnMs: number | null): RegisterOperation => {
    const op = { id: ops.length, input, output: returnMs === null ? null : output, callMs, returnMs: returnMs ?? Infinity };
    ops.push(op);
    return op;
  };
  const h = {
    ops,
    read: (value: string | null, version: number, callMs: number, returnMs: number) =>
      add({ op: 'read' }, value === null ? { kind: 'absent' } : { kind: 'value', value, version }, callMs, returnMs),
    put: (value: string, version: number, callMs: number, returnMs: number | null, ifVersion?: number) =>
      add(ifVersion === undefined ? { op: 'put', value } : { op: 'put', value, ifVersion }, { kind: 'written', version }, callMs, returnMs),
    casRefused: (value: string, ifVersion: number, callMs: number, returnMs: number) => add({ op: 'put', value, ifVersion }, { kind: 'mismatch' }, callMs, returnMs),
    del: (version: number, callMs: number, returnMs: number | null) => add({ op: 'delete' }, { kind: 'written', version }, callMs, returnMs),
    delAbsent: (callMs: number, returnMs: number) => add({ op: 'delete' }, { kind: 'absent' }, callMs, returnMs),
    verdict: () => checkOperations(registerModel, resolveVersions(ops)).verdict,
  };
  return h;
}

describe('the register model, sequentially', () => {
  it('accepts a history that follows the register', () => {
    const h = history();
    h.read(null, 0, 0, 1);
    h.put('a', 3, 2, 3);
    h.read('a', 3, 4, 5);
    h.put('b', 7, 6, 7, 3);
    h.casRefused('c', 3, 8, 9);
    h.del(10, 10, 11);
    h.read(null, 0, 12, 13);
    h.delAbsent(14, 15);
    h.put('d', 16, 16, 17, 0);
    expect(h.verdict()).toBe('ok');
  });

  it('refuses a stale read: a value read after a newer write was acknowledged', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 2, 2, 3);
    h.read('a', 1, 4, 5);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a lost write: the key reads as absent after an acknowledged put', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.read(null, 0, 2, 3);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a compare-and-set that succeeded against a version the key did not have', () => {
    const h = history();
    h.put('a', 5, 0, 1);
    h.put('b', 8, 2, 3, 3);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a compare-and-set refused although the version matched and nothing else ran', () => {
    const h = history();
    h.put('a', 5, 0, 1);
    h.casRefused('b', 5, 2, 3);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a read of the right value at the wrong version', () => {
    const h = history();
    h.put('a', 5, 0, 1);
    h.read('a', 4, 2, 3);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a write that answers a version below the current one (versions are log indexes, they only grow)', () => {
    const h = history();
    h.put('a', 5, 0, 1);
    h.put('b', 4, 2, 3);
    expect(h.verdict()).toBe('illegal');
  });

  it('refuses a delete of a present key answered as absent, and a deleted key read back', () => {
    const a = history();
    a.put('a', 1, 0, 1);
    a.delAbsent(2, 3);
    expect(a.verdict()).toBe('illegal');
    const b = history();
    b.put('a', 1, 0, 1);
    b.del(2, 2, 3);
    b.read('a', 1, 4, 5);
    expect(b.verdict()).toBe('illegal');
  });
});

describe('unknown outcomes (timeouts)', () => {
  it('a timed-out put that took effect: a later read sees it', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 0, 2, null);
    h.read('b', 4, 10, 11);
    expect(h.verdict()).toBe('ok');
  });

  it('a timed-out put that never took effect: later reads keep the old value', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 0, 2, null);
    h.read('a', 1, 10, 11);
    h.read('a', 1, 12, 13);
    expect(h.verdict()).toBe('ok');
  });

  it('a timed-out put may take effect long after it timed out, between two reads', () => {
    const h = history();
    h.put('b', 0, 0, null);
    h.read(null, 0, 10, 11);
    h.read('b', 7, 20, 21);
    expect(h.verdict()).toBe('ok');
  });

  it('but not before it was called', () => {
    const h = history();
    h.read('b', 7, 0, 1);
    h.put('b', 0, 5, null);
    expect(h.verdict()).toBe('illegal');
  });

  it('and once seen it cannot be undone by nothing: the old value cannot come back', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 0, 2, null);
    h.read('b', 4, 10, 11);
    h.read('a', 1, 12, 13);
    expect(h.verdict()).toBe('illegal');
  });

  it('a timed-out put explains a refused compare-and-set that nothing else can', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 0, 2, null); // applied, never read: it gets a version no client knows
    h.casRefused('c', 1, 5, 6);
    h.put('d', 9, 7, 8);
    h.read('d', 9, 10, 11);
    expect(h.verdict()).toBe('ok');
  });

  it('a timed-out compare-and-set applies only if its version matched', () => {
    const ok = history();
    ok.put('a', 1, 0, 1);
    ok.put('b', 0, 2, null, 1);
    ok.read('b', 3, 5, 6);
    expect(ok.verdict()).toBe('ok');
    const bad = history();
    bad.put('a', 1, 0, 1);
    bad.put('b', 0, 2, null, 99);
    bad.read('b', 3, 5, 6);
    expect(bad.verdict()).toBe('illegal');
  });

  it('a timed-out delete may or may not have happened', () => {
    const took = history();
    took.put('a', 1, 0, 1);
    took.del(0, 2, null);
    took.read(null, 0, 5, 6);
    expect(took.verdict()).toBe('ok');
    const didNot = history();
    didNot.put('a', 1, 0, 1);
    didNot.del(0, 2, null);
    didNot.read('a', 1, 5, 6);
    expect(didNot.verdict()).toBe('ok');
  });
});

describe('concurrency', () => {
  it('a read concurrent with a write may see either value', () => {
    for (const seen of ['a', 'b']) {
      const h = history();
      h.put('a', 1, 0, 1);
      h.put('b', 2, 2, 10);
      h.read(seen, seen === 'a' ? 1 : 2, 3, 4);
      expect(h.verdict()).toBe('ok');
    }
  });

  it('two concurrent writes in either order, but one order for everyone after both returned', () => {
    const h = history();
    h.put('a', 2, 0, 10);
    h.put('b', 1, 0, 10);
    h.read('a', 2, 11, 12);
    h.read('a', 2, 13, 14);
    expect(h.verdict()).toBe('ok');
    const flip = history();
    flip.put('a', 2, 0, 10);
    flip.put('b', 3, 0, 10);
    flip.read('b', 3, 11, 12);
    flip.read('a', 2, 13, 14);
    expect(flip.verdict()).toBe('illegal');
  });

  it('two overlapping reads may disagree while a write is in flight, in the one order the write allows', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 2, 2, 20);
    h.read('b', 2, 3, 10);
    h.read('a', 1, 5, 15); // concurrent with the first read: may be ordered before it
    expect(h.verdict()).toBe('ok');
    const bad = history();
    bad.put('a', 1, 0, 1);
    bad.put('b', 2, 2, 20);
    bad.read('b', 2, 3, 4);
    bad.read('a', 1, 5, 15); // strictly after a read that saw b
    expect(bad.verdict()).toBe('illegal');
  });

  it('operations that only touch at one instant count as concurrent', () => {
    const h = history();
    h.put('a', 1, 0, 5);
    h.read(null, 0, 5, 6);
    expect(h.verdict()).toBe('ok');
  });

  it('compare-and-set races: of two CAS on one version only one may succeed', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 2, 2, 10, 1);
    h.put('c', 3, 2, 10, 1);
    expect(h.verdict()).toBe('illegal');
    const one = history();
    one.put('a', 1, 0, 1);
    one.put('b', 2, 2, 10, 1);
    one.casRefused('c', 1, 2, 10);
    one.read('b', 2, 11, 12);
    expect(one.verdict()).toBe('ok');
  });

  it('finds the one good order among many concurrent writes', () => {
    const h = history();
    const n = 12;
    for (let i = 0; i < n; i++) h.put(`v${i}`, 100 - i, 0, 50); // versions say v11 went first, v0 last
    h.read('v0', 100, 60, 61);
    expect(h.verdict()).toBe('ok');
  });
});

describe('keys, budget and reports', () => {
  it('checks each key on its own', () => {
    const a = history();
    a.put('x', 1, 0, 1);
    a.read('x', 1, 2, 3);
    const b = history();
    b.put('y', 2, 0, 1);
    b.read(null, 0, 2, 3);
    const results = checkRegisterHistories(new Map([['a', a.ops], ['b', b.ops]]));
    expect(results.get('a')?.verdict).toBe('ok');
    expect(results.get('b')?.verdict).toBe('illegal');
  });

  it('answers unknown instead of searching past its budget', () => {
    const h = history();
    for (let i = 0; i < 16; i++) h.put(`v${i}`, i + 1, 0, 100);
    h.read('nope', 1, 200, 201);
    const r = checkOperations(registerModel, resolveVersions(h.ops), { stepsMax: 1000 });
    expect(r.verdict).toBe('unknown');
  });

  it('explains an illegal history by its longest linearizable prefix', () => {
    const h = history();
    h.put('a', 1, 0, 1);
    h.put('b', 2, 2, 3);
    h.read('a', 1, 4, 5);
    const r = checkOperations(registerModel, h.ops);
    expect(r.verdict).toBe('illegal');
    if (r.verdict !== 'illegal') return;
    expect(r.longestPrefix).toEqual([0, 1]);
    const lines = explainIllegal(registerModel, h.ops, r.longestPrefix, (op) => `#${op.id} ${JSON.stringify(op.input)}`);
    expect(lines.join('\n')).toContain('state after it: 2:b');
    expect(lines.join('\n')).toContain('#2 {"op":"read"}');
  });
});

/** One operation of an atomic register run: what it did, and its linearization point in time. */
interface AtomicOp {
  input: RegisterInput;
  output: RegisterOutput | null;
  atMs: number;
}

/**
 * Runs commands against a real atomic register (versions grow like log indexes); unknown ones may not apply at all.
 * A compare-and-set names the last version the client saw (from a read or its own write), as real clients must.
 */
function runAtomic(commands: { kind: number; value: number; stale: boolean; unknown: boolean; applied: boolean }[]): AtomicOp[] {
  let state: { value: string; version: number } | null = null;
  let seenVersion = 0;
  let index = 0;
  return commands.map((c, i) => {
    index += 1 + (c.value % 3);
    const value = `v${i}`;
    const current = state?.version ?? 0;
    const unknown = c.unknown && c.kind !== 0;
    let input: RegisterInput;
    let output: RegisterOutput;
    if (c.kind === 0) {
      input = { op: 'read' };
      output = state === null ? { kind: 'absent' } : { kind: 'value', value: state.value, version: state.version };
      seenVersion = current;
    } else if (c.kind === 1 || c.kind === 2) {
      const ifVersion = c.kind === 2 ? (c.stale ? seenVersion + 1_000_000 : seenVersion) : undefined;
      input = ifVersion === undefined ? { op: 'put', value } : { op: 'put', value, ifVersion };
      output = ifVersion === undefined || ifVersion === current ? { kind: 'written', version: index } : { kind: 'mismatch' };
      if (output.kind === 'written' && (!unknown || c.applied)) state = { value, version: index };
      if (output.kind === 'written' && !unknown) seenVersion = index;
    } else {
      input = { op: 'delete' };
      output = state === null ? { kind: 'absent' } : { kind: 'written', version: index };
      if (output.kind === 'written' && (!unknown || c.applied)) state = null;
      if (!unknown) seenVersion = 0;
    }
    return { input, output: unknown ? null : output, atMs: i * 10 };
  });
}

describe('property', () => {
  it('every history of an atomic register is linearizable, whatever the real-time overlaps around each linearization point', () => {
    const command = fc.record({
      kind: fc.integer({ min: 0, max: 3 }),
      value: fc.nat(),
      stale: fc.boolean(),
      unknown: fc.boolean(),
      applied: fc.boolean(),
    });
    const spread = fc.record({ before: fc.integer({ min: 0, max: 40 }), after: fc.integer({ min: 0, max: 40 }) });
    fc.assert(
      fc.property(fc.array(fc.tuple(command, spread), { minLength: 1, maxLength: 40 }), fc.boolean(), (items, shuffle) => {
        const atomic = runAtomic(items.map(([c]) => c));
        let ops: RegisterOperation[] = atomic.map((a, i) => {
          const s = items[i]![1];
          // The linearization point lies inside [call, return]: overlaps come from the spreads.
          return { id: i, input: a.input, output: a.output, callMs: a.atMs - s.before, returnMs: a.atMs + s.after };
        });
        if (shuffle) ops = [...ops].reverse();
        const r = checkOperations(registerModel, resolveVersions(ops));
        return r.verdict === 'ok';
      }),
      { seed: 20261123, numRuns: 300 },
    );
  });

  it('the same histories with one read of a value never written are never linearizable, wherever the read falls', () => {
    const command = fc.record({ kind: fc.integer({ min: 0, max: 3 }), value: fc.nat(), stale: fc.boolean(), unknown: fc.boolean(), applied: fc.boolean() });
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 30 }), fc.nat(), (commands, where) => {
        const ops: RegisterOperation[] = runAtomic(commands).map((a, i) => ({ id: i, input: a.input, output: a.output, callMs: a.atMs - 15, returnMs: a.atMs + 15 }));
        const atMs = (where % (commands.length + 1)) * 10 - 5;
        ops.push({ id: ops.length, input: { op: 'read' }, output: { kind: 'value', value: 'ghost', version: 1 }, callMs: atMs, returnMs: atMs + 1 });
        return checkOperations(registerModel, resolveVersions(ops)).verdict === 'illegal';
      }),
      { seed: 20261124, numRuns: 200 },
    );
  });
});
