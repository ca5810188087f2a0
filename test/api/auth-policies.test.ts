// API tokens with a custom policy, through app.inject over the real auth and task services and one state machine
// that applies each proposal at once: the bad bodies (400 naming the field), the policy shown on create and list,
// and, behind the auth plugin, a token whose rules decide what it may do (deny wins), on this manager and on one
// restored from a snapshot; and no escalation: a token with tokens:write creates and revokes only tokens (and join
// tokens) whose every permission it holds.
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { AuthServiceImpl } from '../../src/manager/auth-service.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { createClusterCa } from '../../src/security/ca.js';
import type { Policy } from '../../src/security/policy.js';
import { joinTokenAccessor, newApiToken } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

/** Applies every proposal at once, through the encoded bytes, as a committed entry would be; one client id per manager. */
class InstantRaft {
  private static managers = 0;
  private readonly clientId = `m${++InstantRaft.managers}`;
  private index: number;
  private seq = 0;
  proposals: Command[] = [];

  constructor(readonly sm = new KvStateMachine()) {
    this.index = sm.appliedIndex;
  }

  async proposeCommand(cmd: Command): Promise<ApplyResult> {
    this.proposals.push(cmd);
    return this.sm.applyEntry(++this.index, encodeCommand({ clientId: this.clientId, seq: ++this.seq, cmd })).result;
  }

  async barrier(): Promise<void> {}
}

const logger = pino({ level: 'silent' });
const teamA: Policy = {
  name: 'team-a',
  rules: [
    { effect: 'allow', resource: 'tasks', verbs: ['read', 'write'] },
    { effect: 'allow', resource: 'kv', verbs: ['read'], keyPrefix: 'team-a/' },
    { effect: 'deny', resource: 'kv', verbs: ['write'], keyPrefix: 'team-a/secret/' },
  ],
};
const rule = { effect: 'allow', resource: 'kv', verbs: ['read'] };

interface Manager {
  app: FastifyInstance;
  raft: InstantRaft;
  auth: AuthServiceImpl;
  kv: FakeManagerService;
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** A manager's app over `sm`; secure: behind the auth plugin, resolving tokens from this manager's applied state. */
function manager(sm = new KvStateMachine(), secure = true, caCertPem: string | null = null): Manager {
  const raft = new InstantRaft(sm);
  const auth = new AuthServiceImpl({ store: sm.auth, raft, clock: systemClock, logger, caCertPem });
  const tasks = new TaskServiceImpl({
    store: sm.tasks, raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock, random: new SeededRandom(1), logger,
  });
  const kv = new FakeManagerService();
  const security = { resolveToken: (a: string) => auth.lookupToken(a) ?? null };
  const app = buildManagerApp({ service: kv, tasks, auth, ...(secure ? { security } : {}) });
  apps.push(app);
  return { app, raft, auth, kv };
}

async function call(m: Manager, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token?: string, payload?: unknown) {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await m.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.json() };
}

describe('POST /v1/auth/tokens with a policy', () => {
  const many = (n: number, r: object = rule) => Array.from({ length: n }, () => r);
  it.each([
    ['both role and policy', { role: 'viewer', policy: teamA }, 'body.role'],
    ['neither role nor policy', { name: 'x' }, 'body.role'],
    ['a policy named like a built-in role', { policy: { ...teamA, name: 'admin' } }, 'body.policy.name'],
    ['a policy named like a join role', { policy: { ...teamA, name: 'worker' } }, 'body.policy.name'],
    ['a policy name in capitals', { policy: { ...teamA, name: 'Team-A' } }, 'body.policy.name'],
    ['a policy without a name', { policy: { rules: [rule] } }, 'body.policy.name'],
    ['a policy without rules', { policy: { ...teamA, rules: [] } }, 'body.policy.rules'],
    ['a policy of 65 rules', { policy: { ...teamA, rules: many(65) } }, 'body.policy.rules'],
    ['an unknown resource', { policy: { ...teamA, rules: [{ ...rule, resource: 'secrets' }] } }, 'body.policy.rules[0].resource'],
    ['an unknown effect', { policy: { ...teamA, rules: [{ ...rule, effect: 'maybe' }] } }, 'body.policy.rules[0].effect'],
    ['an unknown rule field', { policy: { ...teamA, rules: [{ ...rule, when: 'always' }] } }, 'body.policy.rules[0].when'],
    ['a key prefix on a tasks rule', { policy: { ...teamA, rules: [rule, { ...rule, resource: 'tasks', keyPrefix: 'a/' }] } }, 'body.policy.rules[1].keyPrefix'],
    ['a policy past 8 KiB', { policy: { ...teamA, rules: many(20, { ...rule, keyPrefix: 'k'.repeat(500) }) } }, 'body.policy'],
    ['a token key prefix beside a policy', { policy: teamA, keyPrefix: 'team-a/' }, 'body.keyPrefix'],
    // No key has a "." or ".." segment, so no key starts with these.
    ['a key prefix "../"', { role: 'viewer', keyPrefix: '../' }, 'body.keyPrefix'],
    ['a key prefix "x/../"', { role: 'developer', keyPrefix: 'x/../' }, 'body.keyPrefix'],
    ['a key prefix "a/./b"', { role: 'operator', keyPrefix: 'a/./b' }, 'body.keyPrefix'],
    ['a rule\'s key prefix "../"', { policy: { ...teamA, rules: [rule, { ...rule, keyPrefix: 'team-a/../' }] } }, 'body.policy.rules[1].keyPrefix'],
  ])('refuses %s with 400 INVALID_BODY naming the field', async (_what, payload, field) => {
    const m = manager(undefined, false);
    const res = await call(m, 'POST', '/v1/auth/tokens', undefined, payload);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_BODY');
    expect(res.body.error.message).toMatch(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}:`));
    expect(m.raft.proposals).toEqual([]);
  });

  it('says what a rule\'s verbs may be', async () => {
    const m = manager(undefined, false);
    for (const verbs of [['fly'], [], ['read', '*']]) {
      expect(await call(m, 'POST', '/v1/auth/tokens', undefined, { policy: { ...teamA, rules: [{ ...rule, verbs }] } })).toEqual({
        status: 400, body: { error: { code: 'INVALID_BODY', message: 'body.policy.rules[0].verbs: expected ["*"] or a list of "read", "write"' } },
      });
    }
  });

  it('says why a key prefix can begin no key', async () => {
    const m = manager(undefined, false);
    expect(await call(m, 'POST', '/v1/auth/tokens', undefined, { role: 'viewer', keyPrefix: 'x/../' })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_BODY', message: 'body.keyPrefix: the key prefix "x/../" has a "." or ".." segment, which no key has: no key starts with it' } },
    });
  });

  // Each begins a valid key: ".env", "..b", "/a" (an empty first segment), "a/.x".
  it.each(['.', '..', '/', 'a/.'])('takes the key prefix %s, which some key starts with', async (keyPrefix) => {
    const m = manager(undefined, false);
    expect(await call(m, 'POST', '/v1/auth/tokens', undefined, { role: 'viewer', keyPrefix })).toMatchObject({ status: 201, body: { keyPrefix } });
    const policy = { name: 'p', rules: [{ ...rule, keyPrefix }] };
    expect(await call(m, 'POST', '/v1/auth/tokens', undefined, { policy })).toMatchObject({ status: 201, body: { policy } });
  });

  it('answers 201 with the role named by the policy and the policy itself; the list shows it; the manager checks against it', async () => {
    const m = manager(undefined, false);
    const res = await call(m, 'POST', '/v1/auth/tokens', undefined, { name: 'ci-a', policy: teamA, ttlS: 3600 });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      token: expect.stringMatching(/^mk_/), accessor: expect.any(String), name: 'ci-a', role: 'team-a', policy: teamA,
      createdAt: expect.any(String), expiresAt: expect.any(String),
    });
    const list = await call(m, 'GET', '/v1/auth/tokens');
    expect(list.body.items).toEqual([{ accessor: res.body.accessor, name: 'ci-a', role: 'team-a', policy: teamA, createdAt: res.body.createdAt, expiresAt: res.body.expiresAt }]);
    expect(m.auth.lookupToken(res.body.accessor as string)).toMatchObject({ role: 'team-a', policy: teamA });
    const unnamed = await call(m, 'POST', '/v1/auth/tokens', undefined, { policy: teamA });
    expect(unnamed.body.name).toBe(`team-a-${unnamed.body.accessor}`);
  });
});

describe('a token with a policy, behind the auth plugin', () => {
  /** A manager with an admin (the bootstrap token) who creates a team-a token and puts team-a/x. */
  async function withTeamToken(): Promise<{ m: Manager; admin: string; team: string; accessor: string }> {
    const m = manager();
    const admin = newApiToken();
    const boot = new AuthServiceImpl({ store: m.raft.sm.auth, raft: m.raft, clock: systemClock, logger, caCertPem: null, bootstrap: admin });
    expect(await boot.maybeBootstrap(1)).toBe(true);
    const created = await call(m, 'POST', '/v1/auth/tokens', admin.token, { name: 'ci-a', policy: teamA });
    expect(created.status).toBe(201);
    expect((await call(m, 'PUT', '/v1/kv/team-a/x', admin.token, { value: 'hello' })).status).toBe(200);
    return { m, admin: admin.token, team: created.body.token as string, accessor: created.body.accessor as string };
  }

  /** What the team-a token may do: tasks, reads under team-a/; never a secret write, another team's key, or tokens. */
  async function expectTeamA(m: Manager, team: string): Promise<void> {
    const submitted = await call(m, 'POST', '/v1/tasks', team, { image: 'busybox', command: ['echo', 'hi'] });
    expect(submitted.status).toBe(201);
    expect((await call(m, 'GET', `/v1/tasks/${submitted.body.id}`, team)).status).toBe(200);
    expect(await call(m, 'GET', '/v1/kv/team-a/x', team)).toMatchObject({ status: 200, body: { key: 'team-a/x', value: 'hello' } });

    const refusals: [string, 'GET' | 'PUT', string, unknown][] = [
      ['kv:write on key "team-a/secret/y"', 'PUT', '/v1/kv/team-a/secret/y', { value: 'leak' }],
      ['kv:write on key "team-a/y"', 'PUT', '/v1/kv/team-a/y', { value: 'no' }],
      ['kv:read on key "team-b/x"', 'GET', '/v1/kv/team-b/x', undefined],
      ['tokens:read', 'GET', '/v1/auth/tokens', undefined],
    ];
    for (const [missing, method, url, payload] of refusals) {
      const res = await call(m, method, url, team, payload);
      expect(res, `${method} ${url}`).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: `this token (role team-a) lacks ${missing}` } } });
    }
    expect(m.kv.data.has('team-a/secret/y')).toBe(false);
  }

  it('may submit a task and read team-a/x, and is refused the rest with 403 naming the permission', async () => {
    const { m, team } = await withTeamToken();
    await expectTeamA(m, team);
  });

  it('deny wins: a token allowed to write under team-a/ is still refused under team-a/secret/', async () => {
    const { m, admin } = await withTeamToken();
    const writer: Policy = { name: 'team-a-writer', rules: [{ effect: 'allow', resource: 'kv', verbs: ['read', 'write'], keyPrefix: 'team-a/' }, teamA.rules[2]!] };
    const created = await call(m, 'POST', '/v1/auth/tokens', admin, { policy: writer });
    expect(created.status).toBe(201);
    const token = created.body.token as string;
    expect((await call(m, 'PUT', '/v1/kv/team-a/y', token, { value: 'ok' })).status).toBe(200);
    const secret = await call(m, 'PUT', '/v1/kv/team-a/secret/y', token, { value: 'leak' });
    expect(secret).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: 'this token (role team-a-writer) lacks kv:write on key "team-a/secret/y"' } } });
    expect(m.kv.data.has('team-a/secret/y')).toBe(false);
  });

  it('is kept in the replicated state: a manager restored from a snapshot applies the same rules, and a revocation holds', async () => {
    const { m, admin, team, accessor } = await withTeamToken();
    const restored = new KvStateMachine();
    restored.restore(m.raft.sm.snapshot());
    const other = manager(restored);
    // The kv routes here stand on a fake service: the restored manager gets the same keys.
    for (const [k, v] of m.kv.data) other.kv.data.set(k, v);
    await expectTeamA(other, team);

    expect((await call(m, 'DELETE', `/v1/auth/tokens/${accessor}`, admin)).status).toBe(200);
    expect(await call(m, 'GET', '/v1/kv/team-a/x', team)).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED' } } });
  });
});

describe('no escalation through tokens:write', () => {
  const clerk: Policy = {
    name: 'token-clerk',
    rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read', 'write'] }, { effect: 'deny', resource: 'kv', verbs: ['*'] }],
  };
  let caCertPem: string;
  beforeAll(async () => {
    caCertPem = (await createClusterCa({ clusterId: 'test' })).certPem;
  });

  /** A secure manager with a CA, its bootstrap admin, and a token made by the admin with `policy`. */
  async function withToken(policy: Policy): Promise<{ m: Manager; admin: ReturnType<typeof newApiToken>; token: string }> {
    const m = manager(undefined, true, caCertPem);
    const admin = newApiToken();
    const boot = new AuthServiceImpl({ store: m.raft.sm.auth, raft: m.raft, clock: systemClock, logger, caCertPem, bootstrap: admin });
    expect(await boot.maybeBootstrap(1)).toBe(true);
    const created = await call(m, 'POST', '/v1/auth/tokens', admin.token, { name: policy.name, policy });
    expect(created.status).toBe(201);
    return { m, admin, token: created.body.token as string };
  }

  const forbidden = (message: string) => ({ status: 403, body: { error: { code: 'FORBIDDEN', message } } });
  const clerkLacks = 'this token (role token-clerk) lacks kv:read, which';

  it('a token-clerk (tokens:write, kv denied) may not create an admin or viewer token, nor a manager or worker join token', async () => {
    const { m, token } = await withToken(clerk);
    const before = m.raft.proposals.length;
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'admin' })).toEqual(
      forbidden(`${clerkLacks} the new token (role admin) would have: a token may grant only permissions it holds`),
    );
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'viewer' })).toEqual(
      forbidden(`${clerkLacks} the new token (role viewer) would have: a token may grant only permissions it holds`),
    );
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'manager' })).toEqual(
      forbidden(`${clerkLacks} a manager join token grants (a manager gets the CA key): only a token with every permission may make or revoke one`),
    );
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'worker', ttlS: 60 })).toEqual(
      forbidden(`${clerkLacks} a worker join token grants (a worker gets its tasks' secretEnv values): only a token with every permission may make or revoke one`),
    );
    expect(m.raft.proposals.length).toBe(before);
  });

  it('a token-clerk may create a token with its own permissions or fewer', async () => {
    const { m, token } = await withToken(clerk);
    expect((await call(m, 'POST', '/v1/auth/tokens', token, { name: 'clerk-2', policy: clerk })).status).toBe(201);
    const reader: Policy = { name: 'token-reader', rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read'] }] };
    expect((await call(m, 'POST', '/v1/auth/tokens', token, { policy: reader })).status).toBe(201);
  });

  it('may not revoke the bootstrap admin token (which keeps working) nor a join token; may revoke a token within its own permissions', async () => {
    const { m, admin, token } = await withToken(clerk);
    const join = await call(m, 'POST', '/v1/auth/tokens', admin.token, { role: 'worker' });
    expect(join.status).toBe(201);
    for (const ref of ['bootstrap', admin.accessor]) {
      expect(await call(m, 'DELETE', `/v1/auth/tokens/${ref}`, token)).toEqual(
        forbidden(`${clerkLacks} token "bootstrap" (role admin) has: a token may revoke only tokens whose permissions it holds`),
      );
    }
    expect(await call(m, 'DELETE', `/v1/auth/tokens/${join.body.accessor as string}`, token)).toEqual(
      forbidden(`${clerkLacks} a worker join token grants (a worker gets its tasks' secretEnv values): only a token with every permission may make or revoke one`),
    );
    expect((await call(m, 'GET', '/v1/auth/tokens', admin.token)).body.joinTokens).toHaveLength(1);
    expect((await call(m, 'GET', '/v1/cluster', admin.token)).status).toBe(200);

    const reader = await call(m, 'POST', '/v1/auth/tokens', admin.token, { policy: { name: 'token-reader', rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read'] }] } });
    expect(await call(m, 'DELETE', `/v1/auth/tokens/${reader.body.accessor as string}`, token)).toEqual({ status: 200, body: { accessor: reader.body.accessor, revoked: true } });
  });

  it('kv key prefixes count: a token over team-a/ may grant keys under team-a/sub/, not team-b/ nor every key', async () => {
    const teamClerk: Policy = {
      name: 'team-clerk',
      rules: [{ effect: 'allow', resource: 'tokens', verbs: ['write'] }, { effect: 'allow', resource: 'kv', verbs: ['read', 'write'], keyPrefix: 'team-a/' }],
    };
    const { m, token } = await withToken(teamClerk);
    const kvPolicy = (name: string, keyPrefix?: string): Policy => ({
      name, rules: [{ effect: 'allow', resource: 'kv', verbs: ['read'], ...(keyPrefix === undefined ? {} : { keyPrefix }) }],
    });
    expect((await call(m, 'POST', '/v1/auth/tokens', token, { policy: kvPolicy('sub', 'team-a/sub/') })).status).toBe(201);
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { policy: kvPolicy('other', 'team-b/') })).toEqual(
      forbidden('this token (role team-clerk) lacks kv:read on keys under "team-b/", which the new token (role other) would have: a token may grant only permissions it holds'),
    );
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { policy: kvPolicy('all') })).toEqual(
      forbidden('this token (role team-clerk) lacks kv:read, which the new token (role all) would have: a token may grant only permissions it holds'),
    );
    // A developer also submits tasks, which this token may not.
    expect((await call(m, 'POST', '/v1/auth/tokens', token, { role: 'developer', keyPrefix: 'team-a/' })).body.error.message).toMatch(/^this token \(role team-clerk\) lacks tasks:read, /);
  });

  it("a role's key prefix counts: a clerk holding a viewer's permissions under team-a/ may grant a viewer kept to team-a/, never a whole viewer", async () => {
    const viewerUnderA: Policy = {
      name: 'viewer-clerk',
      rules: [
        { effect: 'allow', resource: 'tokens', verbs: ['read', 'write'] },
        { effect: 'allow', resource: 'kv', verbs: ['read'], keyPrefix: 'team-a/' },
        ...(['tasks', 'services', 'workers', 'members', 'cluster', 'metrics'] as const).map((resource) => ({ effect: 'allow' as const, resource, verbs: ['read' as const] })),
      ],
    };
    const { m, admin, token } = await withToken(viewerUnderA);
    const narrowed = await call(m, 'POST', '/v1/auth/tokens', token, { name: 'vp', role: 'viewer', keyPrefix: 'team-a/' });
    expect(narrowed).toMatchObject({ status: 201, body: { role: 'viewer', keyPrefix: 'team-a/' } });
    const lacks = (what: string) => forbidden(`this token (role viewer-clerk) lacks ${what}, which the new token (role viewer) would have: a token may grant only permissions it holds`);
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'viewer' })).toEqual(lacks('kv:read'));
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'viewer', keyPrefix: 'team-b/' })).toEqual(lacks('kv:read on keys under "team-b/"'));
    // And the viewer it made reads team-a/ alone.
    expect((await call(m, 'PUT', '/v1/kv/team-a/x', admin.token, { value: 'a' })).status).toBe(200);
    expect((await call(m, 'PUT', '/v1/kv/a', admin.token, { value: 'outside' })).status).toBe(200);
    const vp = narrowed.body.token as string;
    expect((await call(m, 'GET', '/v1/kv/team-a/x', vp)).status).toBe(200);
    expect(await call(m, 'GET', '/v1/kv/a', vp)).toEqual(forbidden('this token (role viewer) lacks kv:read on key "a"'));
  });

  it('an admin token with a key prefix is refused (400 naming the field and why); one stored before that refusal stays an admin', async () => {
    const { m, admin } = await withToken(clerk);
    const before = m.raft.proposals.length;
    const refused = await call(m, 'POST', '/v1/auth/tokens', admin.token, { name: 'ap', role: 'admin', keyPrefix: 'team-a/' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toEqual({
      code: 'INVALID_BODY',
      message: 'body.keyPrefix: an admin token cannot be kept to a key prefix (an admin makes tokens and join tokens and reads snapshots of every key): give the prefix to an operator, developer or viewer token, or use a policy',
    });
    expect(m.raft.proposals.length).toBe(before);

    // An entry from before the refusal still applies as it did (the state machine did not change), and the token
    // does what it always did: it is an admin, whatever its prefix says.
    const old = newApiToken();
    const applied = await m.raft.proposeCommand({
      op: 'auth.tokenCreate', accessor: old.accessor, secretHash: old.secretHash, name: 'old-ap', role: 'admin', keyPrefix: 'team-a/', expiresAtMs: null, atMs: 0,
    });
    expect(applied.ok).toBe(true);
    expect((await call(m, 'PUT', '/v1/kv/outside', old.token, { value: 'v' })).status).toBe(200);
    expect((await call(m, 'POST', '/v1/auth/tokens', old.token, { role: 'admin' })).status).toBe(201);
  });

  it('an admin may create and revoke join tokens, and revoke any token', async () => {
    const { m, admin } = await withToken(clerk);
    const join = await call(m, 'POST', '/v1/auth/tokens', admin.token, { role: 'manager', ttlS: 600 });
    expect(join.status).toBe(201);
    const accessor = join.body.accessor as string;
    expect(accessor).toBe(joinTokenAccessor(m.raft.proposals.flatMap((c) => (c.op === 'auth.joinTokenCreate' ? [c.secretHash] : []))[0]!));
    expect(await call(m, 'DELETE', `/v1/auth/tokens/${accessor}`, admin.token)).toEqual({ status: 200, body: { accessor, revoked: true } });
    expect((await call(m, 'DELETE', '/v1/auth/tokens/token-clerk', admin.token)).status).toBe(200);
  });
});

describe('no escalation in time: a token that expires makes no token that outlives it', () => {
  const clerk: Policy = { name: 'token-clerk', rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read', 'write'] }] };
  let caCertPem: string;
  beforeAll(async () => {
    caCertPem = (await createClusterCa({ clusterId: 'test' })).certPem;
  });

  /** A secure manager with a CA, its bootstrap admin (which never expires), and a token the admin made with `body`. */
  async function withExpiringToken(body: object): Promise<{ m: Manager; admin: string; token: string; expiresAt: string }> {
    const m = manager(undefined, true, caCertPem);
    const admin = newApiToken();
    const boot = new AuthServiceImpl({ store: m.raft.sm.auth, raft: m.raft, clock: systemClock, logger, caCertPem, bootstrap: admin });
    expect(await boot.maybeBootstrap(1)).toBe(true);
    const created = await call(m, 'POST', '/v1/auth/tokens', admin.token, body);
    expect(created.status).toBe(201);
    expect(created.body.expiresAt).toEqual(expect.any(String));
    return { m, admin: admin.token, token: created.body.token as string, expiresAt: created.body.expiresAt as string };
  }

  const lastProposal = (m: Manager) => m.raft.proposals[m.raft.proposals.length - 1]!;

  it('a policy token made with ttlS 30 makes a token without ttl that expires with it, and its children too (the tester made one that never expired)', async () => {
    const { m, token, expiresAt } = await withExpiringToken({ name: 'clerk', policy: clerk, ttlS: 30 });
    const child = await call(m, 'POST', '/v1/auth/tokens', token, { name: 'child', policy: clerk });
    expect(child).toMatchObject({ status: 201, body: { name: 'child', expiresAt } });
    // The command carries the expiry: applying it reads no clock, so every manager stores the same.
    expect(lastProposal(m)).toMatchObject({ op: 'auth.tokenCreate', name: 'child', expiresAtMs: Date.parse(expiresAt) });
    expect(m.auth.lookupToken(child.body.accessor as string)?.expiresAtMs).toBe(Date.parse(expiresAt));
    const grandchild = await call(m, 'POST', '/v1/auth/tokens', child.body.token as string, { name: 'grandchild', policy: clerk });
    expect(grandchild).toMatchObject({ status: 201, body: { expiresAt } });
    const listed = (await call(m, 'GET', '/v1/auth/tokens', token)).body.items as { name: string; expiresAt: string | null }[];
    expect(listed.filter((t) => t.name !== 'bootstrap').map((t) => t.expiresAt)).toEqual([expiresAt, expiresAt, expiresAt]);
  });

  it('a ttl that would end after its creator is 403 FORBIDDEN saying how long is left, and nothing is proposed; a shorter one is kept', async () => {
    const { m, token, expiresAt } = await withExpiringToken({ name: 'clerk', policy: clerk, ttlS: 30 });
    const before = m.raft.proposals.length;
    const refused = await call(m, 'POST', '/v1/auth/tokens', token, { policy: clerk, ttlS: 3600 });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('FORBIDDEN');
    expect(refused.body.error.message).toMatch(
      new RegExp(`^this token \\(role token-clerk\\) expires at ${expiresAt.replace(/\./g, '\\.')}, and the new token \\(role token-clerk\\) may not outlive it: ttlS 3600 would end at \\S+; ask for at most (29|30) s, or for none to end with it$`),
    );
    expect(m.raft.proposals.length).toBe(before);
    const shorter = await call(m, 'POST', '/v1/auth/tokens', token, { policy: clerk, ttlS: 10 });
    expect(shorter.status).toBe(201);
    expect(Date.parse(shorter.body.expiresAt as string)).toBeLessThan(Date.parse(expiresAt));
    expect(Date.parse(shorter.body.expiresAt as string)).toBe(Date.parse(shorter.body.createdAt as string) + 10_000);
  });

  it('an admin token with a ttl makes join tokens that end with it: without ttl (not 24 h), and refuses a longer ttl', async () => {
    const { m, token, expiresAt } = await withExpiringToken({ name: 'short-admin', role: 'admin', ttlS: 60 });
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'worker' })).toMatchObject({ status: 201, body: { role: 'worker', expiresAt } });
    expect(lastProposal(m)).toMatchObject({ op: 'auth.joinTokenCreate', expiresAtMs: Date.parse(expiresAt) });
    const refused = await call(m, 'POST', '/v1/auth/tokens', token, { role: 'manager', ttlS: 600 });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toMatch(/^this token \(role admin\) expires at \S+, and a manager join token may not outlive it: ttlS 600 would end at \S+; ask for at most \d+ s, or for none to end with it$/);
    const shorter = await call(m, 'POST', '/v1/auth/tokens', token, { role: 'manager', ttlS: 30 });
    expect(shorter.status).toBe(201);
    expect(Date.parse(shorter.body.expiresAt as string)).toBeLessThan(Date.parse(expiresAt));
    // And an API token it makes without ttl ends with it too.
    expect(await call(m, 'POST', '/v1/auth/tokens', token, { role: 'viewer' })).toMatchObject({ status: 201, body: { expiresAt } });
  });

  it('a token that never expires still makes tokens that never expire, and join tokens of 24 h', async () => {
    const { m, admin } = await withExpiringToken({ name: 'clerk', policy: clerk, ttlS: 30 });
    expect(await call(m, 'POST', '/v1/auth/tokens', admin, { role: 'viewer' })).toMatchObject({ status: 201, body: { expiresAt: null } });
    expect(await call(m, 'POST', '/v1/auth/tokens', admin, { role: 'viewer', ttlS: 3600 })).toMatchObject({ status: 201 });
    const join = await call(m, 'POST', '/v1/auth/tokens', admin, { role: 'worker' });
    expect(join.status).toBe(201);
    const lifeMs = Date.parse(join.body.expiresAt as string) - Date.now();
    expect(lifeMs).toBeGreaterThan(86_400_000 - 60_000);
    expect(lifeMs).toBeLessThanOrEqual(86_400_000);
  });
});
