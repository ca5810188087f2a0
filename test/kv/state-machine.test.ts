// KvStateMachine: versions and compare-and-set, sessions (at-most-once), prefix listing, snapshots, determinism.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { commandVersion, encodeCommand, type Command, type CommandEnvelope } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';

const put = (key: string, value: string, ifVersion?: number): Command =>
  ifVersion === undefined ? { op: 'put', key, value } : { op: 'put', key, value, ifVersion };
const del = (key: string, ifVersion?: number): Command => (ifVersion === undefined ? { op: 'delete', key } : { op: 'delete', key, ifVersion });

/** Feeds commands with consecutive log indexes and one client whose seq grows by one per command. */
class Driver {
  index = 0;
  seq = 0;
  constructor(readonly sm = new KvStateMachine(), readonly clientId = 'c1') {}
  run(cmd: Command): ApplyResult {
    return this.sm.apply(++this.index, encodeCommand({ clientId: this.clientId, seq: ++this.seq, cmd }));
  }
  raw(envelope: CommandEnvelope): ReturnType<KvStateMachine['applyEntry']> {
    return this.sm.applyEntry(++this.index, encodeCommand(envelope));
  }
}

describe('KvStateMachine: keys and versions', () => {
  it('a put sets the version to its log index; get returns it', () => {
    const d = new Driver();
    expect(d.run(put('a', '1'))).toEqual({ ok: true, key: 'a', version: 1 });
    expect(d.run(put('a', '2'))).toEqual({ ok: true, key: 'a', version: 2 });
    expect(d.sm.get('a')).toEqual({ key: 'a', value: '2', version: 2 });
    expect(d.sm.appliedIndex).toBe(2);
    expect(d.sm.size).toBe(1);
  });

  it('ifVersion 0 means "must not exist"', () => {
    const d = new Driver();
    expect(d.run(put('a', '1', 0))).toEqual({ ok: true, key: 'a', version: 1 });
    expect(d.run(put('a', '2', 0))).toMatchObject({ ok: false, code: 'KV_VERSION_MISMATCH', currentVersion: 1 });
    expect(d.sm.get('a')?.value).toBe('1');
  });

  it('ifVersion N means the current version must be N', () => {
    const d = new Driver();
    d.run(put('a', '1'));
    expect(d.run(put('a', '2', 5))).toMatchObject({ ok: false, code: 'KV_VERSION_MISMATCH', currentVersion: 1 });
    expect(d.run(put('a', '2', 1))).toEqual({ ok: true, key: 'a', version: 3 });
    expect(d.run(put('b', 'x', 3))).toMatchObject({ ok: false, code: 'KV_VERSION_MISMATCH', currentVersion: 0 });
  });

  it('delete removes a key; a missing key is KV_KEY_NOT_FOUND, or KV_VERSION_MISMATCH with a wrong ifVersion', () => {
    const d = new Driver();
    d.run(put('a', '1'));
    expect(d.run(del('a', 7))).toMatchObject({ ok: false, code: 'KV_VERSION_MISMATCH', currentVersion: 1 });
    expect(d.run(del('a', 1))).toEqual({ ok: true, key: 'a', version: 3 });
    expect(d.sm.get('a')).toBeUndefined();
    expect(d.run(del('a'))).toMatchObject({ ok: false, code: 'KV_KEY_NOT_FOUND', currentVersion: 0 });
    expect(d.run(del('a', 3))).toMatchObject({ ok: false, code: 'KV_VERSION_MISMATCH', currentVersion: 0 });
    expect(d.run(del('a', 0))).toMatchObject({ ok: false, code: 'KV_KEY_NOT_FOUND' });
    expect(d.sm.size).toBe(0);
  });

  it('refuses an index that does not move forward (a programmer error)', () => {
    const d = new Driver();
    d.run(put('a', '1'));
    expect(() => d.sm.apply(1, encodeCommand({ clientId: 'x', seq: 1, cmd: put('b', '1') }))).toThrow(/applied after/);
  });

  it('skips an entry that is not a command, the same way on every manager, and goes on', () => {
    // A log poisoned before leaders checked proposals: 13 bytes of garbage at index 2, between two puts.
    const garbage = new Uint8Array([0x93, 1, 2, 3, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4]);
    const replicas = [new Driver(), new Driver()];
    const answers = replicas.map((d) => {
      d.run(put('a', '1'));
      const skipped = d.sm.applyEntry(++d.index, garbage);
      d.run(put('b', '2'));
      return { skipped, snapshot: d.sm.snapshot() };
    });
    expect(answers[0]!.skipped).toMatchObject({ clientId: '', seq: 0, result: { ok: false, code: 'INVALID_COMMAND' } });
    expect(answers[0]!.skipped.result).toMatchObject({ message: expect.stringMatching(/^entry 2 is not a command/) });
    expect(answers[1]).toEqual(answers[0]);
    expect(replicas[0]!.sm.appliedIndex).toBe(3);
    expect(replicas[0]!.sm.get('b')).toEqual({ key: 'b', value: '2', version: 3 });
  });

  it('stops on an entry of a newer command version rather than skipping what newer managers apply', () => {
    const newer = new Packr({ useRecords: false }).pack({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'a', value: 'x' }, v: commandVersion + 1 });
    expect(() => new KvStateMachine().apply(1, newer)).toThrow(`command version ${commandVersion + 1} is newer than this manager understands (${commandVersion}); upgrade`);
  });
});

describe('KvStateMachine: prefix listing', () => {
  const d = new Driver();
  for (const k of ['workers/w2', 'tasks/b', 'tasks/a', 'tasks0', 'task', 'workers/w1', 'tasks/c']) d.run(put(k, k.toUpperCase()));
  d.run(del('tasks/c'));

  it('lists a prefix in key order', () => {
    expect(d.sm.list('tasks/').map((r) => r.key)).toEqual(['tasks/a', 'tasks/b']);
    expect(d.sm.list('workers/').map((r) => r.value)).toEqual(['WORKERS/W1', 'WORKERS/W2']);
    expect(d.sm.list('').map((r) => r.key)).toEqual(['task', 'tasks/a', 'tasks/b', 'tasks0', 'workers/w1', 'workers/w2']);
    expect(d.sm.list('nope/')).toEqual([]);
  });

  it('pages with after and limit', () => {
    expect(d.sm.list('', { limit: 2 }).map((r) => r.key)).toEqual(['task', 'tasks/a']);
    expect(d.sm.list('', { after: 'tasks/a', limit: 2 }).map((r) => r.key)).toEqual(['tasks/b', 'tasks0']);
    expect(d.sm.list('tasks/', { after: 'tasks/b' })).toEqual([]);
    expect(d.sm.list('tasks/', { after: 'a' }).map((r) => r.key)).toEqual(['tasks/a', 'tasks/b']);
    expect(d.sm.list('tasks/', { limit: 0 })).toEqual([]);
  });
});

describe('KvStateMachine: client sessions', () => {
  it('a retried (clientId, seq) is not applied again and returns the first result', () => {
    const d = new Driver();
    const env: CommandEnvelope = { clientId: 'm1', seq: 1, cmd: put('a', 'x', 0) };
    const first = d.raw(env);
    expect(first).toMatchObject({ fresh: true, result: { ok: true, version: 1 } });
    d.run(put('b', 'y'));
    const retry = d.raw(env);
    expect(retry).toMatchObject({ clientId: 'm1', seq: 1, fresh: false, result: { ok: true, key: 'a', version: 1 } });
    expect(d.sm.get('a')?.version).toBe(1);
  });

  it('applies seqs that commit out of order, each once', () => {
    const d = new Driver();
    expect(d.raw({ clientId: 'm1', seq: 2, cmd: put('b', '2') }).fresh).toBe(true);
    expect(d.raw({ clientId: 'm1', seq: 1, cmd: put('a', '1') }).fresh).toBe(true);
    expect(d.raw({ clientId: 'm1', seq: 2, cmd: put('b', '2') }).fresh).toBe(false);
    expect(d.sm.get('a')?.version).toBe(2);
    expect(d.sm.get('b')?.version).toBe(1);
  });

  it('forgets results below ackSeq, and never applies such a seq again', () => {
    const d = new Driver();
    d.raw({ clientId: 'm1', seq: 1, cmd: put('a', '1') });
    d.raw({ clientId: 'm1', seq: 2, ackSeq: 2, cmd: put('b', '1') });
    const late = d.raw({ clientId: 'm1', seq: 1, cmd: put('a', 'again') });
    expect(late).toMatchObject({ fresh: false, result: { ok: false, code: 'TIMEOUT' } });
    expect(d.sm.get('a')?.value).toBe('1');
  });

  it('a command is applied even if its ackSeq claims its own seq (the ack covers only lower seqs)', () => {
    const d = new Driver();
    expect(d.raw({ clientId: 'm1', seq: 1, ackSeq: 2, cmd: put('a', '1') })).toMatchObject({ fresh: true, result: { ok: true } });
    expect(d.raw({ clientId: 'm1', seq: 1, ackSeq: 2, cmd: put('a', '1') })).toMatchObject({ fresh: false, result: { ok: true, version: 1 } });
    expect(d.raw({ clientId: 'm1', seq: 2, ackSeq: 3, cmd: put('b', '1') }).fresh).toBe(true);
    expect(d.raw({ clientId: 'm1', seq: 1, ackSeq: 2, cmd: put('a', '1') }).result).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect(d.sm.get('a')?.version).toBe(1);
  });

  it('bounds the results per client, evicting the oldest applied', () => {
    const d = new Driver(new KvStateMachine({ sessionResultsMax: 2 }));
    for (let seq = 1; seq <= 3; seq++) d.raw({ clientId: 'm1', seq, cmd: put(`k${seq}`, 'v') });
    expect(d.raw({ clientId: 'm1', seq: 2, cmd: put('k2', 'again') }).fresh).toBe(false);
    expect(d.raw({ clientId: 'm1', seq: 1, cmd: put('k1', 'again') }).result).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect(d.sm.get('k1')?.value).toBe('v');
  });

  it('bounds sessions, evicting the least recently used by log index', () => {
    const d = new Driver(new KvStateMachine({ sessionsMax: 2 }));
    d.raw({ clientId: 'a', seq: 1, cmd: put('x', '1') });
    d.raw({ clientId: 'b', seq: 1, cmd: put('x', '2') });
    d.raw({ clientId: 'a', seq: 2, cmd: put('x', '3') }); // a is now more recent than b
    d.raw({ clientId: 'c', seq: 1, cmd: put('x', '4') }); // evicts b
    expect(d.sm.sessionCount).toBe(2);
    expect(d.raw({ clientId: 'a', seq: 2, cmd: put('x', '5') }).fresh).toBe(false);
    // b's session is gone, so its old seq is applied as new: the documented cost of a bounded session table.
    expect(d.raw({ clientId: 'b', seq: 1, cmd: put('x', '6') }).fresh).toBe(true);
  });
});

describe('KvStateMachine: snapshots', () => {
  it('restore(snapshot()) gives the same keys, versions, sessions and applied index', () => {
    const d = new Driver();
    d.run(put('a', '1'));
    d.run(put('b/c', '2'));
    d.run(del('a'));
    const restored = new KvStateMachine();
    restored.restore(d.sm.snapshot());
    expect(restored.appliedIndex).toBe(3);
    expect(restored.get('b/c')).toEqual({ key: 'b/c', value: '2', version: 2 });
    expect(restored.list('').length).toBe(1);
    expect(restored.snapshot()).toEqual(d.sm.snapshot());
    // the session came along: a retry of seq 1 is still recognised
    expect(restored.applyEntry(4, encodeCommand({ clientId: 'c1', seq: 1, cmd: put('a', '1') })).fresh).toBe(false);
  });

  it('rejects a corrupt snapshot with STORAGE_CORRUPT and keeps its state', () => {
    const d = new Driver();
    d.run(put('a', '1'));
    expect(() => d.sm.restore(new Uint8Array([1, 2, 3]))).toThrow(expect.objectContaining({ code: 'STORAGE_CORRUPT' }) as Error);
    expect(d.sm.get('a')?.value).toBe('1');
  });
});

describe('KvStateMachine: properties', () => {
  const keyArb = fc.constantFrom('a', 'b', 'tasks/1', 'tasks/2');
  const cmdArb: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ op: fc.constant('put' as const), key: keyArb, value: fc.string({ maxLength: 4 }) }, { requiredKeys: ['op', 'key', 'value'] }),
    fc.record({ op: fc.constant('put' as const), key: keyArb, value: fc.string({ maxLength: 4 }), ifVersion: fc.nat(12) }),
    fc.record({ op: fc.constant('delete' as const), key: keyArb }),
    fc.record({ op: fc.constant('delete' as const), key: keyArb, ifVersion: fc.nat(12) }),
  );
  // Several clients; seqs chosen small so that retries and out-of-order seqs happen often.
  const envArb: fc.Arbitrary<CommandEnvelope> = fc.record({
    clientId: fc.constantFrom('m1', 'm2', 'm3'),
    seq: fc.integer({ min: 1, max: 8 }),
    cmd: cmdArb,
  });
  const small = () => new KvStateMachine({ sessionsMax: 2, sessionResultsMax: 3 });
  // With acknowledgements too, for the properties that do not depend on every result being remembered.
  const ackedEnvArb: fc.Arbitrary<CommandEnvelope> = fc.record(
    { clientId: fc.constantFrom('m1', 'm2', 'm3'), seq: fc.integer({ min: 1, max: 8 }), ackSeq: fc.integer({ min: 1, max: 9 }), cmd: cmdArb },
    { requiredKeys: ['clientId', 'seq', 'cmd'] },
  );

  it('the same command sequence gives the same state and results on two machines', () => {
    fc.assert(
      fc.property(fc.array(ackedEnvArb, { maxLength: 60 }), (envs) => {
        const [x, y] = [small(), small()];
        envs.forEach((e, i) => {
          const data = encodeCommand(e);
          expect(x.applyEntry(i + 1, data)).toEqual(y.applyEntry(i + 1, data));
        });
        expect(x.snapshot()).toEqual(y.snapshot());
      }),
    );
  });

  it('a (clientId, seq) is applied at most once however often it is retried', () => {
    fc.assert(
      fc.property(fc.array(envArb, { maxLength: 60 }), (envs) => {
        const sm = new KvStateMachine();
        const seen = new Map<string, ApplyResult>();
        envs.forEach((e, i) => {
          const before = sm.snapshot();
          const applied = sm.applyEntry(i + 1, encodeCommand(e));
          const id = `${e.clientId}/${e.seq}`;
          const first = seen.get(id);
          if (first === undefined) {
            expect(applied.fresh).toBe(true);
            seen.set(id, applied.result);
          } else {
            expect(applied).toMatchObject({ fresh: false, result: first });
            const probe = new KvStateMachine();
            probe.restore(before);
            expect(probe.list('')).toEqual(sm.list('')); // a retry changes no key
          }
        });
      }),
    );
  });

  it('snapshot then restore equals the original, and both go on identically', () => {
    fc.assert(
      fc.property(fc.array(ackedEnvArb, { maxLength: 40 }), fc.array(ackedEnvArb, { maxLength: 20 }), (head, tail) => {
        const original = small();
        head.forEach((e, i) => original.applyEntry(i + 1, encodeCommand(e)));
        const copy = small();
        copy.restore(original.snapshot());
        expect(copy.snapshot()).toEqual(original.snapshot());
        tail.forEach((e, i) => {
          const data = encodeCommand(e);
          expect(copy.applyEntry(head.length + i + 1, data)).toEqual(original.applyEntry(head.length + i + 1, data));
        });
        expect(copy.snapshot()).toEqual(original.snapshot());
      }),
    );
  });
});
