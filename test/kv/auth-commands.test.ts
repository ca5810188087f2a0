// The auth commands' wire form: every command survives encode/decode unchanged, equal commands give equal bytes,
// and a shape a manager must not guess about (a raw secret, a missing field, a stray one) is refused.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type AuthCommand, type CommandEnvelope } from '../../src/kv/commands.js';
import { MinkubeError } from '../../src/lib/errors.js';

const raw = new Packr({ useRecords: false });
const accessor = '0123456789abcdef';
const secretHash = 'a'.repeat(64);
const sessionKey = Buffer.alloc(32, 7).toString('base64');

const commands: AuthCommand[] = [
  { op: 'auth.bootstrap', accessor, secretHash, sessionKey, atMs: 1000 },
  { op: 'auth.tokenCreate', accessor, secretHash, name: 'ci', role: 'developer', keyPrefix: 'apps/ci/', expiresAtMs: 5000, atMs: 1000 },
  { op: 'auth.tokenCreate', accessor, secretHash, name: 'ops@example', role: 'operator', expiresAtMs: null, atMs: 1000 },
  { op: 'auth.tokenRevoke', accessor },
  { op: 'auth.joinTokenCreate', secretHash, role: 'worker', expiresAtMs: 9000, atMs: 1000 },
  { op: 'auth.joinTokenRevoke', secretHash },
];

function envelope(cmd: unknown): CommandEnvelope {
  return { clientId: 'm1.abc', seq: 1, cmd: cmd as AuthCommand };
}

describe('auth commands on the wire', () => {
  it.each(commands)('roundtrips %j', (cmd) => {
    expect(decodeCommand(encodeCommand(envelope(cmd)))).toEqual(envelope(cmd));
  });

  it('encodes only known fields, in one order', () => {
    const messy = { atMs: 1000, junk: 1, sessionKey, secretHash, accessor, op: 'auth.bootstrap' };
    expect(encodeCommand(envelope(messy))).toEqual(encodeCommand(envelope(commands[0])));
  });

  const bad: [string, Record<string, unknown>][] = [
    ['a bootstrap without its session key', { op: 'auth.bootstrap', accessor, secretHash, atMs: 1 }],
    ['a session key of 16 bytes', { op: 'auth.bootstrap', accessor, secretHash, sessionKey: Buffer.alloc(16).toString('base64'), atMs: 1 }],
    ['an accessor of upper-case hex', { op: 'auth.tokenRevoke', accessor: accessor.toUpperCase() }],
    ['a raw secret where its hash belongs', { op: 'auth.joinTokenRevoke', secretHash: 'not-a-hash' }],
    ['a token without expiresAtMs', { op: 'auth.tokenCreate', accessor, secretHash, name: 'x', role: 'viewer', atMs: 1 }],
    ['a token name with a space', { op: 'auth.tokenCreate', accessor, secretHash, name: 'a b', role: 'viewer', expiresAtMs: null, atMs: 1 }],
    ['an empty key prefix', { op: 'auth.tokenCreate', accessor, secretHash, name: 'x', role: 'viewer', keyPrefix: '', expiresAtMs: null, atMs: 1 }],
    ['a join token for an admin', { op: 'auth.joinTokenCreate', secretHash, role: 'admin', expiresAtMs: 2, atMs: 1 }],
    ['a join token that never expires', { op: 'auth.joinTokenCreate', secretHash, role: 'worker', expiresAtMs: null, atMs: 1 }],
    ['an unknown field', { op: 'auth.tokenRevoke', accessor, why: 'because' }],
  ];

  it.each(bad)('refuses %s, naming the op', (_name, cmd) => {
    let error: unknown;
    try {
      decodeCommand(raw.pack({ clientId: 'c', seq: 1, cmd }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MinkubeError);
    expect((error as MinkubeError).message).toContain(`malformed command: ${cmd.op as string}`);
  });
});
