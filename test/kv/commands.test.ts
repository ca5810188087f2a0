// The command envelope's wire format: roundtrips, and rejects what a node must not guess about.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { commandVersion, decodeCommand, encodeCommand, tryDecodeCommand, validateCommand, type CommandEnvelope } from '../../src/kv/commands.js';
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

  it.each(bad)('rejects %s with INVALID_COMMAND', (_name, value) => {
    const e = catchError(() => decodeCommand(raw.pack(value)));
    expect(e).toBeInstanceOf(MinkubeError);
    expect((e as MinkubeError).code).toBe('INVALID_COMMAND');
    expect((e as MinkubeError).message).toMatch(/^malformed command/);
  });

  it('rejects bytes that are not msgpack', () => {
    expect(() => decodeCommand(new Uint8Array([0xc1]))).toThrow(/malformed command/);
  });
});

describe('the envelope version', () => {
  const envelope: CommandEnvelope = { clientId: 'c', seq: 4, ackSeq: 2, reqId: 'r', cmd: { op: 'put', key: 'k', value: 'v' } };

  it('is written as v: 1, after the fields that were there before it', () => {
    const wire = raw.unpack(encodeCommand(envelope)) as Record<string, unknown>;
    expect(Object.keys(wire)).toEqual(['clientId', 'seq', 'cmd', 'ackSeq', 'reqId', 'v']);
    expect(wire.v).toBe(1);
  });

  it('is 1 when missing, so entries and snapshots written before it still decode', () => {
    const old = raw.pack({ clientId: 'c', seq: 4, cmd: { op: 'put', key: 'k', value: 'v' }, ackSeq: 2, reqId: 'r' });
    expect(decodeCommand(old)).toEqual(envelope);
  });

  it('refuses a newer version by name, and says it is newer rather than garbage', () => {
    const newer = raw.pack({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' }, v: commandVersion + 1 });
    const problem = `command version ${commandVersion + 1} is newer than this manager understands (${commandVersion})`;
    expect(() => decodeCommand(newer)).toThrow(problem);
    expect(tryDecodeCommand(newer)).toEqual({ ok: false, problem, newer: true });
    expect(tryDecodeCommand(new Uint8Array([0xc1]))).toMatchObject({ ok: false, newer: false });
    expect(() => decodeCommand(raw.pack({ clientId: 'c', seq: 1, cmd: { op: 'delete', key: 'k' }, v: 0 }))).toThrow(/v must be a positive integer/);
  });
});

describe('validateCommand (what a leader checks before a proposal enters the log)', () => {
  it('passes a good command, and names what is wrong with a bad one', () => {
    expect(validateCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' } }))).toBeNull();
    expect(validateCommand(new TextEncoder().encode('not a command'))).toMatch(/^malformed command/);
  });

  it('applies the spec rules to the tasks a command submits', () => {
    const submit = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.submit', taskId: 't', spec: { image: 'x', env: { '1BAD': 'v' } }, atMs: 1 } });
    expect(validateCommand(submit)).toBe('spec.env.1BAD: not a valid variable name');
    const batch = encodeCommand({
      clientId: 'c', seq: 1,
      cmd: { op: 'task.submitBatch', atMs: 1, tasks: [{ taskId: 'a', spec: { image: 'x' } }, { taskId: 'b', spec: { image: 'x', command: ['a', 'b\u0000c'] } }] },
    });
    expect(validateCommand(batch)).toBe('tasks[1].command[1]: contains a NUL byte');
  });

  it('refuses an image that is no reference Docker accepts, and passes the names process workers are given', () => {
    const submit = (image: string) => validateCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.submit', taskId: 't', spec: { image }, atMs: 1 } }));
    for (const image of ['minkube-busybox:latest; rm -rf /', ' ', 'UPPER/Case:tag', 'a@sha256:zz', 'a;b', 'tab\there', 'bell\u0007', 'a:', '/a', '-a', 'a..b', `${'a'.repeat(256)}`]) {
      expect(submit(image)).toMatch(/^spec\.image: ".*" is (not an image reference|a reference whose name is longer than 255 characters)/);
    }
    expect(submit('a b')).toBe('spec.image: "a b" is not an image reference ([host[:port]/]name[:tag][@digest], the name in lower case: letters, digits and . _ - separators)');
    const good = ['local', 'none', 'host', 'busybox', 'minkube-busybox:latest', 'localhost:5000/team/app:1.2', 'Registry.Example.com/app', '[::1]:5000/app',
      `busybox@sha256:${'a'.repeat(64)}`, `registry.io/app:v1@sha256:${'b'.repeat(64)}`, 'a'.repeat(64), 'my_app__x---y.z'];
    for (const image of good) expect(submit(image)).toBeNull();
  });

  it('hands the envelope it decoded to the next decode of the same bytes, once; equal bytes elsewhere decode afresh', () => {
    const envelope: CommandEnvelope = { clientId: 'c', seq: 3, reqId: 'r', cmd: { op: 'put', key: 'k', value: 'v' } };
    const bytes = encodeCommand(envelope);
    expect(validateCommand(bytes)).toBeNull();
    const first = tryDecodeCommand(bytes);
    const second = tryDecodeCommand(bytes);
    const copy = tryDecodeCommand(Uint8Array.from(bytes));
    for (const d of [first, second, copy]) expect(d).toEqual({ ok: true, envelope });
    // Not one object handed out twice: the second decode is a decode.
    expect(first.ok && second.ok && first.envelope !== second.envelope).toBe(true);
    // A refused command is not kept.
    const bad = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.submit', taskId: 't', spec: { image: 'x', env: { '1BAD': 'v' } }, atMs: 1 } });
    expect(validateCommand(bad)).not.toBeNull();
    expect(tryDecodeCommand(bad).ok).toBe(true);
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

describe('the principal in the envelope (for the audit log)', () => {
  const byToken: CommandEnvelope = { clientId: 'c', seq: 1, reqId: 'r', pr: { a: '0123456789abcdef', r: 'admin' }, cmd: { op: 'put', key: 'k', value: 'v' } };
  const byNode: CommandEnvelope = { clientId: 'c', seq: 2, pr: { n: 'w1', r: 'worker' }, cmd: { op: 'delete', key: 'k' } };

  it.each([byToken, byNode])('roundtrips %j', (envelope) => {
    expect(decodeCommand(encodeCommand(envelope))).toEqual(envelope);
  });

  it('is absent from entries written before it, and from requests without one', () => {
    const old = raw.pack({ clientId: 'c', seq: 4, cmd: { op: 'put', key: 'k', value: 'v' }, reqId: 'r' });
    expect(decodeCommand(old)).not.toHaveProperty('pr');
    const wire = raw.unpack(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' } })) as Record<string, unknown>;
    expect(wire).not.toHaveProperty('pr');
  });

  it('carries only the accessor or node id and the role, whatever else the caller put in it', () => {
    const extra = { ...byToken, pr: { a: '0123456789abcdef', r: 'admin', token: 'mk_secret' } } as unknown as CommandEnvelope;
    expect((raw.unpack(encodeCommand(extra)) as Record<string, unknown>).pr).toEqual({ a: '0123456789abcdef', r: 'admin' });
  });

  const bad: [string, unknown][] = [
    ['not a map', 'admin'],
    ['no role', { a: 'x' }],
    ['both accessor and node', { a: 'x', n: 'y', r: 'admin' }],
    ['an extra field', { a: 'x', r: 'admin', secret: 's' }],
    ['an empty accessor', { a: '', r: 'admin' }],
    ['a numeric role', { n: 'm1', r: 1 }],
    ['a long node id', { n: 'm'.repeat(129), r: 'manager' }],
  ];

  it.each(bad)('rejects a principal with %s', (_name, pr) => {
    expect(() => decodeCommand(raw.pack({ clientId: 'c', seq: 1, pr, cmd: { op: 'delete', key: 'a' } }))).toThrow(/malformed command: pr/);
  });
});
