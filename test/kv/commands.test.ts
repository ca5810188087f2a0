// The command envelope's wire format: roundtrips, and rejects what a node must not guess about.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type CommandEnvelope } from '../../src/kv/commands.js';
import { MinkubeError } from '../../src/lib/errors.js';

const raw = new Packr({ useRecords: false });

describe('encodeCommand / decodeCommand', () => {
  const envelopes: CommandEnvelope[] = [
    { clientId: 'm1.abc', seq: 1, cmd: { op: 'put', key: 'a', value: 'x' } },
    { clientId: 'm1.abc', seq: 7, ackSeq: 5, reqId: 'req-1', cmd: { op: 'put', key: 'tasks/1', value: '', ifVersion: 0 } },
    { clientId: 'c', seq: 2, cmd: { op: 'delete', key: 'a' } },
    { clientId: 'c', seq: 3, cmd: { op: 'delete', key: 'a', ifVersion: 12 } },
  ];

  it.each(envelopes)('roundtrips %j', (envelope) => {
    expect(decodeCommand(encodeCommand(envelope))).toEqual(envelope);
  });

  it('encodes only known fields, so equal envelopes give equal bytes', () => {
    const extra = { clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v', junk: 1 }, junk: 2 } as unknown as CommandEnvelope;
    expect(encodeCommand(extra)).toEqual(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' } }));
  });

  const bad: [string, unknown][] = [
    ['not a map', [1, 2]],
    ['empty clientId', { clientId: '', seq: 1, cmd: { op: 'delete', key: 'a' } }],
    ['seq 0', { clientId: 'c', seq: 0, cmd: { op: 'delete', key: 'a' } }],
    ['fractional seq', { clientId: 'c', seq: 1.5, cmd: { op: 'delete', key: 'a' } }],
    ['bad ackSeq', { clientId: 'c', seq: 1, ackSeq: -1, cmd: { op: 'delete', key: 'a' } }],
    ['unknown op', { clientId: 'c', seq: 1, cmd: { op: 'frobnicate', key: 'a' } }],
    ['put without value', { clientId: 'c', seq: 1, cmd: { op: 'put', key: 'a' } }],
    ['numeric key', { clientId: 'c', seq: 1, cmd: { op: 'put', key: 1, value: 'v' } }],
    ['negative ifVersion', { clientId: 'c', seq: 1, cmd: { op: 'delete', key: 'a', ifVersion: -1 } }],
  ];

  it.each(bad)('rejects %s with INTERNAL', (_name, value) => {
    const e = catchError(() => decodeCommand(raw.pack(value)));
    expect(e).toBeInstanceOf(MinkubeError);
    expect((e as MinkubeError).code).toBe('INTERNAL');
    expect((e as MinkubeError).message).toMatch(/^malformed command/);
  });

  it('rejects bytes that are not msgpack', () => {
    expect(() => decodeCommand(new Uint8Array([0xc1]))).toThrow(/malformed command/);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}
