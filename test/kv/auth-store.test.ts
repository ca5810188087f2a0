// The auth store through the state machine, as a manager sees it: tokens created, refused, revoked and expired;
// tokens with a custom policy; bootstrap counted once; the bounds; snapshots (round trip, an older snapshot without
// auth or without policies, a corrupt section).
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type AuthCommand } from '../../src/kv/commands.js';
import { KvStateMachine, type KvStateMachineOptions } from '../../src/kv/state-machine.js';
import type { Policy } from '../../src/security/policy.js';
import { limits } from '../../src/lib/limits.js';

const hash = (c: string): string => c.repeat(64);
const acc = (n: number): string => n.toString(16).padStart(16, '0');
const key = (b: number): string => Buffer.alloc(32, b).toString('base64');
const policy: Policy = {
  name: 'team-a',
  rules: [
    { effect: 'allow', resource: 'tasks', verbs: ['read', 'write'] },
    { effect: 'deny', resource: 'kv', verbs: ['write'], keyPrefix: 'team-a/secret/' },
  ],
};

class Driver {
  readonly sm: KvStateMachine;
  private index = 0;
  private seq = 0;

  constructor(o: KvStateMachineOptions = {}) {
    this.sm = new KvStateMachine(o);
  }

  apply(cmd: AuthCommand) {
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'm1', seq: ++this.seq, cmd }));
  }

  create(n: number, o: { name?: string; role?: string; expiresAtMs?: number | null; atMs?: number; keyPrefix?: string; policy?: Policy } = {}) {
    const cmd: AuthCommand = {
      op: 'auth.tokenCreate', accessor: acc(n), secretHash: hash('b'), name: o.name ?? `t${n}`, role: o.policy?.name ?? o.role ?? 'viewer',
      expiresAtMs: o.expiresAtMs ?? null, atMs: o.atMs ?? 1000, ...(o.keyPrefix === undefined ? {} : { keyPrefix: o.keyPrefix }),
      ...(o.policy === undefined ? {} : { policy: o.policy }),
    };
    return this.apply(cmd);
  }
}

describe('API tokens', () => {
  it('a created token is found by its accessor, listed, and gone once revoked', () => {
    const d = new Driver();
    expect(d.create(1, { name: 'ci', role: 'developer', keyPrefix: 'apps/' })).toMatchObject({ ok: true, key: acc(1) });
    const record = { accessor: acc(1), secretHash: hash('b'), name: 'ci', role: 'developer', keyPrefix: 'apps/', createdAtMs: 1000, expiresAtMs: null };
    expect(d.sm.auth.tokenByAccessor(acc(1), 5000)).toEqual(record);
    expect(d.sm.auth.listTokens()).toEqual([record]);
    expect(d.apply({ op: 'auth.tokenRevoke', accessor: acc(1) })).toMatchObject({ ok: true, key: acc(1) });
    expect(d.sm.auth.tokenByAccessor(acc(1))).toBeUndefined();
    expect(d.sm.auth.listTokens()).toEqual([]);
  });

  it('a token with a policy keeps it, named by it, through the encoded entry', () => {
    const d = new Driver();
    expect(d.create(1, { name: 'ci-a', policy })).toMatchObject({ ok: true, key: acc(1) });
    const record = { accessor: acc(1), secretHash: hash('b'), name: 'ci-a', role: 'team-a', keyPrefix: null, policy, createdAtMs: 1000, expiresAtMs: null };
    expect(d.sm.auth.tokenByAccessor(acc(1), 5000)).toEqual(record);
    expect(d.sm.auth.listTokens()).toEqual([record]);
  });

  it('refuses a duplicate accessor or name with TOKEN_EXISTS, and revoking an unknown one with TOKEN_NOT_FOUND', () => {
    const d = new Driver();
    d.create(1, { name: 'ci' });
    expect(d.create(1, { name: 'other' })).toMatchObject({ ok: false, code: 'TOKEN_EXISTS' });
    expect(d.create(2, { name: 'ci' })).toMatchObject({ ok: false, code: 'TOKEN_EXISTS', message: expect.stringContaining('"ci"') as string });
    expect(d.apply({ op: 'auth.tokenRevoke', accessor: acc(9) })).toMatchObject({ ok: false, code: 'TOKEN_NOT_FOUND' });
    expect(d.sm.auth.tokenCount).toBe(1);
  });

  it('an expired token answers undefined given a time; its name is taken again only once a create a day later drops it', () => {
    const d = new Driver();
    d.create(1, { name: 'short', expiresAtMs: 2000 });
    expect(d.sm.auth.tokenByAccessor(acc(1), 1999)).toBeDefined();
    expect(d.sm.auth.tokenByAccessor(acc(1), 2000)).toBeUndefined();
    // Expired by this create's clock (which may run ahead of the others'): its name is still its own.
    expect(d.create(2, { name: 'short', atMs: 2500 })).toMatchObject({ ok: false, code: 'TOKEN_EXISTS', message: expect.stringContaining('revoke it to use its name now') as string });
    expect(d.create(2, { name: 'short', atMs: 2000 + limits.expiredTokenDropAfterMs })).toMatchObject({ ok: true });
    expect(d.sm.auth.listTokens().map((t) => t.accessor)).toEqual([acc(2)]);
  });

  it('a create made on a clock ahead drops no token that expired less than a day before its time, unless room is needed', () => {
    const dayMs = limits.expiredTokenDropAfterMs;
    const d = new Driver({ auth: { tokensMax: 3 } });
    d.create(1, { name: 'hour', expiresAtMs: 3_600_000 });
    // Proposed by a manager two hours ahead: the token has expired by its clock, but it stays.
    d.create(2, { atMs: 7_200_000 });
    expect(d.sm.auth.tokenByAccessor(acc(1), 1000)).toBeDefined();
    // A day after its expiry it is dropped.
    d.create(3, { atMs: 3_600_000 + dayMs });
    expect(d.sm.auth.tokenByAccessor(acc(1))).toBeUndefined();
    // At the limit, an expired one makes room at once.
    d.create(4, { name: 'soon', expiresAtMs: 3_600_000 + dayMs + 10 });
    expect(d.create(5, { atMs: 3_600_000 + dayMs + 20 })).toMatchObject({ ok: true });
    expect(d.sm.auth.tokenByAccessor(acc(4))).toBeUndefined();
  });

  it('refuses a token past the bound with TOKEN_LIMIT_REACHED, and takes one again after a revocation', () => {
    const d = new Driver({ auth: { tokensMax: 2 } });
    d.create(1);
    d.create(2);
    expect(d.create(3)).toMatchObject({ ok: false, code: 'TOKEN_LIMIT_REACHED', message: expect.stringContaining('revoke') as string });
    d.apply({ op: 'auth.tokenRevoke', accessor: acc(1) });
    expect(d.create(3)).toMatchObject({ ok: true });
  });
});

describe('bootstrap', () => {
  it('the first creates an admin token and the session key; later ones change nothing', () => {
    const d = new Driver();
    expect(d.sm.auth.bootstrapped()).toBe(false);
    expect(d.sm.auth.sessionKey()).toBeNull();
    d.apply({ op: 'auth.bootstrap', accessor: acc(1), secretHash: hash('c'), sessionKey: key(1), atMs: 10 });
    expect(d.apply({ op: 'auth.bootstrap', accessor: acc(2), secretHash: hash('d'), sessionKey: key(2), atMs: 20 })).toMatchObject({ ok: true, key: '' });
    expect(d.sm.auth.bootstrapped()).toBe(true);
    expect(d.sm.auth.sessionKey()).toEqual(new Uint8Array(Buffer.alloc(32, 1)));
    expect(d.sm.auth.listTokens()).toEqual([
      { accessor: acc(1), secretHash: hash('c'), name: 'bootstrap', role: 'admin', keyPrefix: null, createdAtMs: 10, expiresAtMs: null },
    ]);
  });

  it("the operator's bootstrap token displaces one created earlier under its name, so the configured admin works", () => {
    const d = new Driver();
    d.create(5, { name: 'bootstrap', role: 'viewer' });
    d.apply({ op: 'auth.bootstrap', accessor: acc(1), secretHash: hash('c'), sessionKey: key(1), atMs: 10 });
    expect(d.sm.auth.tokenByAccessor(acc(5))).toBeUndefined();
    expect(d.sm.auth.tokenByAccessor(acc(1))).toMatchObject({ name: 'bootstrap', role: 'admin' });
  });

  it('the session key handed out is a copy', () => {
    const d = new Driver();
    d.apply({ op: 'auth.bootstrap', accessor: acc(1), secretHash: hash('c'), sessionKey: key(1), atMs: 10 });
    d.sm.auth.sessionKey()!.fill(0);
    expect(d.sm.auth.sessionKey()![0]).toBe(1);
  });
});

describe('join tokens', () => {
  it('are found by secret hash until they expire or are revoked; the bound refuses more', () => {
    const d = new Driver({ auth: { joinTokensMax: 1 } });
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('1'), role: 'worker', expiresAtMs: 5000, atMs: 1000 });
    expect(d.sm.auth.joinToken(hash('1'), 4999)).toEqual({ secretHash: hash('1'), role: 'worker', createdAtMs: 1000, expiresAtMs: 5000 });
    expect(d.sm.auth.joinToken(hash('1'), 5000)).toBeUndefined();
    expect(d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('2'), role: 'manager', expiresAtMs: 9000, atMs: 4000 })).toMatchObject({
      ok: false, code: 'TOKEN_LIMIT_REACHED',
    });
    // Once the first has expired, a create at a later time drops it and fits.
    expect(d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('2'), role: 'manager', expiresAtMs: 9000, atMs: 6000 })).toMatchObject({ ok: true });
    expect(d.apply({ op: 'auth.joinTokenRevoke', secretHash: hash('2') })).toMatchObject({ ok: true });
    expect(d.sm.auth.joinToken(hash('2'), 6000)).toBeUndefined();
    expect(d.apply({ op: 'auth.joinTokenRevoke', secretHash: hash('2') })).toMatchObject({ ok: false, code: 'TOKEN_NOT_FOUND' });
  });

  it('are listed oldest first, expired ones too until a create a day later drops them; a revoked one is gone', () => {
    const d = new Driver();
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('1'), role: 'worker', expiresAtMs: 5000, atMs: 1000 });
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('2'), role: 'manager', expiresAtMs: 9000, atMs: 2000 });
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('3'), role: 'worker', expiresAtMs: 9000, atMs: 3000 });
    expect(d.sm.auth.listJoinTokens().map((j) => [j.secretHash, j.role])).toEqual([[hash('1'), 'worker'], [hash('2'), 'manager'], [hash('3'), 'worker']]);
    d.apply({ op: 'auth.joinTokenRevoke', secretHash: hash('2') });
    // Expired by then, but not a day before: kept (the proposer's clock may run ahead).
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('4'), role: 'worker', expiresAtMs: 9000, atMs: 6000 });
    expect(d.sm.auth.listJoinTokens().map((j) => j.secretHash)).toEqual([hash('1'), hash('3'), hash('4')]);
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('5'), role: 'worker', expiresAtMs: 9000 + limits.expiredTokenDropAfterMs, atMs: 5000 + limits.expiredTokenDropAfterMs });
    expect(d.sm.auth.listJoinTokens().map((j) => j.secretHash)).toEqual([hash('3'), hash('4'), hash('5')]);
  });
});

describe('snapshots', () => {
  function populated(): Driver {
    const d = new Driver();
    d.apply({ op: 'auth.bootstrap', accessor: acc(1), secretHash: hash('c'), sessionKey: key(3), atMs: 10 });
    d.create(2, { name: 'ci', role: 'developer', keyPrefix: 'apps/', expiresAtMs: 99_000 });
    d.create(3, { name: 'ci-a', policy });
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('e'), role: 'manager', expiresAtMs: 50_000, atMs: 20 });
    d.apply({ op: 'auth.joinTokenCreate', secretHash: hash('f'), role: 'worker', expiresAtMs: 50_000, atMs: 21, caDigest: 'ab'.repeat(32) });
    return d;
  }

  const packr = new Packr({ useRecords: false, moreTypes: false });
  /** The snapshot's token rows, and a function that packs the snapshot again with other rows. */
  function tokenRows(d: Driver): { rows: unknown[][]; withRows: (rows: unknown[][]) => Uint8Array } {
    const current = packr.unpack(d.sm.snapshot()) as Record<string, unknown>;
    const [rows, joinTokens, sessionKey] = current.auth as [unknown[][], unknown, unknown];
    return { rows, withRows: (r) => packr.pack({ ...current, auth: [r, joinTokens, sessionKey] }) };
  }

  it('restore(snapshot()) and restore(captureSnapshot()) give the same auth state', async () => {
    const d = populated();
    for (const bytes of [d.sm.snapshot(), await d.sm.captureSnapshot()()]) {
      const copy = new KvStateMachine();
      copy.restore(bytes);
      expect(copy.auth.listTokens()).toEqual(d.sm.auth.listTokens());
      expect(copy.auth.tokenByAccessor(acc(3))?.policy).toEqual(policy);
      expect(copy.auth.joinToken(hash('e'), 30)).toEqual(d.sm.auth.joinToken(hash('e'), 30));
      expect(copy.auth.joinToken(hash('f'), 30)).toMatchObject({ role: 'worker', caDigest: 'ab'.repeat(32) });
      expect(copy.auth.sessionKey()).toEqual(d.sm.auth.sessionKey());
      expect(copy.snapshot()).toEqual(d.sm.snapshot());
    }
  });

  it('a snapshot written before the auth store (format 2) loads with an empty auth state', () => {
    const d = populated();
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const current = packr.unpack(d.sm.snapshot()) as Record<string, unknown>;
    const { auth: _auth, ...rest } = current;
    const old = packr.pack({ ...rest, format: 2 });
    d.sm.restore(old);
    expect(d.sm.auth.bootstrapped()).toBe(false);
    expect(d.sm.auth.listTokens()).toEqual([]);
    expect(d.sm.auth.joinTokenCount).toBe(0);
  });

  it('a token without a policy keeps the seven fields of older snapshots, so a snapshot written before policies loads', () => {
    const d = populated();
    const { rows, withRows } = tokenRows(d);
    expect(rows.map((r) => r.length)).toEqual([7, 7, 8]);
    const copy = new KvStateMachine();
    copy.restore(withRows(rows.slice(0, 2)));
    expect(copy.auth.listTokens()).toEqual(d.sm.auth.listTokens().slice(0, 2));
    expect(copy.auth.listTokens().some((t) => 'policy' in t)).toBe(false);
  });

  it.each([
    ['a policy that is not its role', (r: unknown[]) => [...r.slice(0, 3), 'team-b', ...r.slice(4)]],
    ['a key prefix beside a policy', (r: unknown[]) => [...r.slice(0, 4), 'apps/', ...r.slice(5)]],
    ['a rule of an unknown resource', (r: unknown[]) => [...r.slice(0, 7), { name: 'team-a', rules: [{ effect: 'allow', resource: 'x', verbs: ['read'] }] }]],
    ['a policy without rules', (r: unknown[]) => [...r.slice(0, 7), { name: 'team-a', rules: [] }]],
    ['a ninth field', (r: unknown[]) => [...r, null]],
  ])('a token row with %s is STORAGE_CORRUPT', (_name, change) => {
    const d = populated();
    const { rows, withRows } = tokenRows(d);
    expect(() => d.sm.restore(withRows([rows[0]!, rows[1]!, change(rows[2]!)]))).toThrow(expect.objectContaining({ code: 'STORAGE_CORRUPT' }) as Error);
    expect(d.sm.auth.tokenByAccessor(acc(3))?.policy).toEqual(policy);
  });

  it('a corrupt auth section is STORAGE_CORRUPT and leaves the state as it was', () => {
    const d = populated();
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const current = packr.unpack(d.sm.snapshot()) as Record<string, unknown>;
    const broken = packr.pack({ ...current, auth: [[['short']], [], null] });
    const missing = packr.pack({ ...current, auth: undefined });
    for (const bytes of [broken, missing]) {
      expect(() => d.sm.restore(bytes)).toThrow(expect.objectContaining({ code: 'STORAGE_CORRUPT' }) as Error);
    }
    expect(d.sm.auth.tokenCount).toBe(3);
    expect(d.sm.auth.bootstrapped()).toBe(true);
  });
});
