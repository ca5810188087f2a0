import { describe, expect, it } from 'vitest';
import { internSpec, StringPool } from '../../src/kv/string-pool.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { encodeCommand } from '../../src/kv/commands.js';

describe('StringPool', () => {
  it('answers equal strings and starts over past its bound', () => {
    const pool = new StringPool(2);
    expect(pool.get('a')).toBe('a');
    expect(pool.get('a')).toBe('a');
    pool.get('b');
    expect(pool.size).toBe(2);
    pool.get('c');
    expect(pool.size).toBe(1);
    expect(pool.maybe(null)).toBeNull();
    expect(pool.maybe(undefined)).toBeUndefined();
  });

  it('leaves a spec equal to itself, names and odd env keys included', () => {
    const env = JSON.parse('{"A":"1","__proto__":"x"}') as Record<string, string>;
    const spec = { name: 'n', image: 'busybox', command: ['sleep', '1'], env, constraints: ['zone==a'], restartPolicy: 'never' as const };
    const copy = structuredClone(spec);
    expect(internSpec(spec, new StringPool())).toEqual(copy);
    expect(Object.keys(spec.env)).toEqual(['A', '__proto__']);
  });

  it('a store restored from its snapshot answers the same records and snapshot', async () => {
    const sm = new KvStateMachine();
    let seq = 0;
    const apply = (cmd: unknown): void => {
      seq++;
      const r = sm.apply(seq, encodeCommand({ clientId: 'c', seq, ...(seq > 1 ? { ackSeq: seq - 1 } : {}), cmd } as never));
      expect(r.ok).toBe(true);
    };
    for (let i = 0; i < 50; i++) {
      apply({ op: 'task.submit', taskId: `t${String(i).padStart(4, '0')}`, spec: { image: 'img', command: ['echo', String(i % 3)], env: { K: 'v' } }, atMs: 1000 + (i >> 3), idempotencyKey: `k${i}` });
    }
    const bytes = await sm.captureSnapshot()();
    const fresh = new KvStateMachine();
    fresh.restore(bytes);
    expect(Buffer.from(await fresh.captureSnapshot()()).equals(Buffer.from(bytes))).toBe(true);
  });
});
