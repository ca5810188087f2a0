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
const policy = {
  name: 'team-a',
  rules: [
    { effect: 'allow', resource: 'tasks', verbs: ['read', 'write'] },
    { effect: 'allow', resource: 'kv', verbs: ['read'], keyPrefix: 'team-a/' },
    { effect: 'deny', resource: 'kv', verbs: ['*'], keyPrefix: 'team-a/secret/' },
    { effect: 'allow', resource: '*', verbs: ['read'] },
  ],
} as const;
const withPolicy = (p: unknown, o: Record<string, unknown> = {}): Record<string, unknown> => ({
  op: 'auth.tokenCreate', accessor, secretHash, name: 'a', role: 'team-a', policy: p, expiresAtMs: null, atMs: 1, ...o,
});
const rule = { effect: 'allow', resource: 'kv', verbs: ['read'] };

const commands: AuthCommand[] = [
  { op: 'auth.bootstrap', accessor, secretHash, sessionKey, atMs: 1000 },
  { op: 'auth.tokenCreate', accessor, secretHash, name: 'ci', role: 'developer', keyPrefix: 'apps/ci/', expiresAtMs: 5000, atMs: 1000 },
  { op: 'auth.tokenCreate', accessor, secretHash, name: 'ops@example', role: 'operator', expiresAtMs: null, atMs: 1000 },
  { op: 'auth.tokenCreate', accessor, secretHash, name: 'ci-a', role: 'team-a', policy: structuredClone(policy) as never, expiresAtMs: null, atMs: 1000 },
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

  it('encodes a policy in one field order, known fields only', () => {
    const messy = withPolicy({ rules: [{ verbs: ['read'], junk: 1, resource: 'kv', effect: 'allow' }], name: 'team-a' });
    const clean = withPolicy({ name: 'team-a', rules: [rule] });
    expect(encodeCommand(envelope(messy))).toEqual(encodeCommand(envelope(clean)));
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
    ['a policy whose name is not the role', withPolicy(policy, { role: 'team-b' })],
    ['a policy beside a key prefix', withPolicy(policy, { keyPrefix: 'team-a/' })],
    ['a policy without rules', withPolicy({ name: 'team-a', rules: [] })],
    ['a policy of 65 rules', withPolicy({ name: 'team-a', rules: Array.from({ length: 65 }, () => rule) })],
    ['a policy past 8 KiB', withPolicy({ name: 'team-a', rules: Array.from({ length: 20 }, () => ({ ...rule, keyPrefix: 'k'.repeat(500) })) })],
    ['a policy rule with an unknown field', withPolicy({ name: 'team-a', rules: [{ ...rule, when: 'always' }] })],
    ['a policy rule of an unknown effect', withPolicy({ name: 'team-a', rules: [{ ...rule, effect: 'maybe' }] })],
    ['a policy rule of an unknown resource', withPolicy({ name: 'team-a', rules: [{ ...rule, resource: 'secrets' }] })],
    ['a policy rule with no verbs', withPolicy({ name: 'team-a', rules: [{ ...rule, verbs: [] }] })],
    ['a policy rule with a verb twice', withPolicy({ name: 'team-a', rules: [{ ...rule, verbs: ['read', 'read'] }] })],
    ['a key prefix on a rule that is not kv', withPolicy({ name: 'team-a', rules: [{ ...rule, resource: 'tasks', keyPrefix: 'a/' }] })],
    ['a key prefix of characters no key has', withPolicy({ name: 'team-a', rules: [{ ...rule, keyPrefix: 'a b' }] })],
    ['a policy name in capitals', withPolicy({ name: 'Team-A', rules: [rule] }, { role: 'Team-A' })],
    ['a policy without a name', withPolicy({ rules: [rule] })],
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
