// The run-level checks on small made-up records: kv answers classified, lost writes named, the run file parsed, and
// two copies of one task running at once caught (and a run killed without its end line only warned about).
import { describe, expect, it } from 'vitest';
import { checkLinearizable, checkLostWrites, checkOverlaps, parseRuns } from './checks.js';
import { classifyKv, type KvKind, type KvOpRecord } from './history.js';
import type { RegisterOutput } from './linearizability.js';

let nextId = 0;
function rec(key: string, kind: KvKind, status: KvOpRecord['status'], callMs: number, returnMs: number | null, output: RegisterOutput | null, args: { value?: string; ifVersion?: number; client?: string } = {}): KvOpRecord {
  const { client = 'c1', ...rest } = args;
  return { id: nextId++, client, node: 'm1', key, kind, ...rest, callMs, returnMs, status, output };
}

describe('classifyKv', () => {
  it('reads the answers as the README documents them', () => {
    expect(classifyKv('read', { kind: 'answer', status: 200, body: { value: 'a', version: 4 } })).toMatchObject({ status: 'ok', output: { kind: 'value', value: 'a', version: 4 } });
    expect(classifyKv('read', { kind: 'answer', status: 404, body: { error: { code: 'KV_KEY_NOT_FOUND' } } })).toMatchObject({ status: 'ok', output: { kind: 'absent' } });
    expect(classifyKv('cas', { kind: 'answer', status: 409, body: { error: { code: 'KV_VERSION_MISMATCH' } } })).toMatchObject({ status: 'fail', output: { kind: 'mismatch' } });
    expect(classifyKv('delete', { kind: 'answer', status: 404, body: { error: { code: 'KV_KEY_NOT_FOUND' } } })).toMatchObject({ status: 'fail', output: { kind: 'absent' } });
    expect(classifyKv('put', { kind: 'answer', status: 503, body: { error: { code: 'NO_LEADER' } } })).toMatchObject({ status: 'fail', output: null });
    expect(classifyKv('put', { kind: 'answer', status: 504, body: { error: { code: 'TIMEOUT' } } })).toMatchObject({ status: 'unknown', output: null });
    expect(classifyKv('put', { kind: 'refused', error: 'ECONNREFUSED' })).toMatchObject({ status: 'fail' });
    expect(classifyKv('put', { kind: 'unknown', error: 'ECONNRESET' })).toMatchObject({ status: 'unknown' });
  });
});

describe('checkLostWrites', () => {
  it('passes when the final read shows the last acknowledged write', () => {
    const records = [
      rec('k', 'put', 'ok', 0, 1, { kind: 'written', version: 3 }, { value: 'a' }),
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'read', 'ok', 10, 11, { kind: 'value', value: 'b', version: 5 }, { client: 'final' }),
    ];
    expect(checkLostWrites(records, ['k'])).toEqual([]);
  });

  it('names the acknowledged write that the final state lost', () => {
    const records = [
      rec('k', 'put', 'ok', 0, 1, { kind: 'written', version: 3 }, { value: 'a' }),
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'read', 'ok', 10, 11, { kind: 'value', value: 'a', version: 3 }, { client: 'final' }),
    ];
    const [failure] = checkLostWrites(records, ['k']);
    expect(failure).toContain('acknowledged write lost');
    expect(failure).toContain('put k b');
  });

  it('allows an older value when a write of unknown outcome produced it, and absence after a timed-out delete', () => {
    const late = [
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'put', 'unknown', 0, null, null, { value: 'a' }),
      rec('k', 'read', 'ok', 10, 11, { kind: 'value', value: 'a', version: 9 }, { client: 'final' }),
    ];
    expect(checkLostWrites(late, ['k'])).toEqual([]);
    const gone = [
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'delete', 'unknown', 0, null, null),
      rec('k', 'read', 'ok', 10, 11, { kind: 'absent' }, { client: 'final' }),
    ];
    expect(checkLostWrites(gone, ['k'])).toEqual([]);
  });

  it('catches a key that vanished with no delete that could explain it, a value nobody wrote, and a missing final read', () => {
    const vanished = [
      rec('k', 'delete', 'ok', 0, 1, { kind: 'written', version: 2 }),
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'read', 'ok', 10, 11, { kind: 'absent' }, { client: 'final' }),
    ];
    expect(checkLostWrites(vanished, ['k'])[0]).toContain('finds no key');
    const ghost = [rec('k', 'read', 'ok', 10, 11, { kind: 'value', value: 'zz', version: 5 }, { client: 'final' })];
    expect(checkLostWrites(ghost, ['k'])[0]).toContain('no client wrote');
    expect(checkLostWrites([], ['k'])[0]).toContain('no final read');
  });
});

describe('checkLinearizable', () => {
  it('turns kv records into register histories: refusals without information are left out, timeouts stay open', () => {
    const records = [
      rec('k', 'put', 'ok', 0, 1, { kind: 'written', version: 3 }, { value: 'a' }),
      rec('k', 'put', 'fail', 2, 3, null, { value: 'never' }), // 503: not applied
      rec('k', 'cas', 'unknown', 4, null, null, { value: 'late', ifVersion: 3 }),
      rec('k', 'read', 'ok', 10, 11, { kind: 'value', value: 'a', version: 3 }),
      rec('k', 'read', 'ok', 12, 13, { kind: 'value', value: 'late', version: 8 }),
      rec('k', 'read', 'unknown', 14, null, null),
    ];
    const r = checkLinearizable(records, { stepsMax: 100_000, timeMs: 5000 });
    expect(r.failures).toEqual([]);
    expect(r.results.k).toMatchObject({ verdict: 'ok', operations: 4 });
  });

  it('reports a stale read with the operations around it', () => {
    const records = [
      rec('k', 'put', 'ok', 0, 1, { kind: 'written', version: 3 }, { value: 'a' }),
      rec('k', 'put', 'ok', 2, 3, { kind: 'written', version: 5 }, { value: 'b' }),
      rec('k', 'read', 'ok', 4, 5, { kind: 'value', value: 'a', version: 3 }),
    ];
    const r = checkLinearizable(records, { stepsMax: 100_000, timeMs: 5000 });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toContain('key k: the history is not linearizable');
    expect(r.failures[0]).toContain('read k');
  });
});

describe('task runs', () => {
  const file = [
    'start chaos-1-1 100 1000',
    'end chaos-1-1 100 2000',
    'start chaos-1-2 200 1500',
    'start chaos-1-2 300 2500',
    'end chaos-1-2 200 3000 term',
    'end chaos-1-2 300 3500',
    'start chaos-1-3 400 5000',
    'start chaos-1-3 500 6000',
    'end chaos-1-3 500 7000',
    'garbage',
  ].join('\n');

  it('parses starts and ends by marker and pid', () => {
    const runs = parseRuns(file);
    expect(runs).toHaveLength(5);
    expect(runs.find((r) => r.pid === 200)).toEqual({ marker: 'chaos-1-2', pid: 200, startMs: 1500, endMs: 3000, stopped: true });
    expect(runs.find((r) => r.pid === 400)?.endMs).toBeNull();
  });

  it('catches two runs of one task at once; a dead run without an end is only a warning', () => {
    const found = checkOverlaps(parseRuns(file), () => false, 10_000, (m) => `about ${m}`);
    expect(found.failures).toHaveLength(1);
    expect(found.failures[0]).toContain('task chaos-1-2 ran as two processes at once: pid 200 [1500, 3000] and pid 300 [2500, 3500]');
    expect(found.warnings).toEqual(['task chaos-1-3: pid 400 started at 5000 and died without writing its end']);
  });

  it('a run without an end whose process lives counts until now', () => {
    const found = checkOverlaps(parseRuns(file), (pid) => pid === 400, 10_000, () => '');
    expect(found.failures.some((f) => f.includes('chaos-1-3'))).toBe(true);
  });
});
