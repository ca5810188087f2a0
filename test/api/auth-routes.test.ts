// The token routes through app.inject, over the real AuthServiceImpl and state machine behind a one-node "Raft"
// that applies each proposal at once: what a client sees on create, list and revoke, what a manager then checks
// tokens against, join tokens (listed by accessor, revoked, then refused by POST /v1/join; none from an insecure
// cluster; every certificate a join issues audited), bad bodies naming the field, bootstrap, and the admin token of a
// rotated CA.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { AuditService } from '../../src/contracts/services.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import type { Clock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { AuditLog } from '../../src/manager/audit.js';
import { AuthServiceImpl, type AdminTokenMark, type AuthServiceOptions } from '../../src/manager/auth-service.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { caDigest, createClusterCa, createCsr, generateNodeKey, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { hashSecret, joinTokenAccessor, newApiToken, parseApiToken, parseJoinToken, secretMatches } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

/** Applies every proposal at once, through the encoded bytes, as a committed entry would be. */
class InstantRaft {
  private index = 0;
  private seq = 0;
  failNext: Error | null = null;
  proposals: Command[] = [];

  constructor(readonly sm = new KvStateMachine()) {}

  async proposeCommand(cmd: Command): Promise<ApplyResult> {
    const fail = this.failNext;
    this.failNext = null;
    if (fail !== null) throw fail;
    this.proposals.push(cmd);
    return this.sm.applyEntry(++this.index, encodeCommand({ clientId: 'm1', seq: ++this.seq, cmd })).result;
  }

  async barrier(): Promise<void> {}
}

const start = Date.parse('2030-01-01T00:00:00.000Z');
const clock: Clock & { now: number } = { now: start, nowMs: () => clock.now, monoMs: () => clock.now, setTimeout: () => ({ cancel() {} }) };

function service(raft: InstantRaft, o: Partial<AuthServiceOptions> = {}): AuthServiceImpl {
  return new AuthServiceImpl({ store: raft.sm.auth, raft, clock, logger: pino({ level: 'silent' }), caCertPem: null, ...o });
}

let ca: { certPem: string; keyPem: string };
let caCertPem: string;
let raft: InstantRaft;
let auth: AuthServiceImpl;
let app: FastifyInstance;

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'test' });
  caCertPem = ca.certPem;
});
beforeEach(async () => {
  clock.now = start;
  raft = new InstantRaft();
  auth = service(raft, { caCertPem });
  app = buildManagerApp({ service: new FakeManagerService(), auth });
  await app.ready();
});
afterAll(() => app?.close());

function post(payload: unknown) {
  return app.inject({ method: 'POST', url: '/v1/auth/tokens', payload: payload as object });
}

describe('POST /v1/auth/tokens', () => {
  it('answers 201 with the token once; the manager then knows it by accessor, with only the hash of its secret', async () => {
    const res = await post({ name: 'ci', role: 'developer', keyPrefix: 'apps/ci/', ttlS: 3600 });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ token: string; accessor: string }>();
    expect(body).toEqual({
      token: expect.stringMatching(/^mk_[0-9a-f]{16}_/) as string, accessor: expect.any(String) as string, name: 'ci', role: 'developer',
      keyPrefix: 'apps/ci/', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-01T01:00:00.000Z',
    });
    const parsed = parseApiToken(body.token)!;
    expect(parsed.accessor).toBe(body.accessor);
    const known = auth.lookupToken(body.accessor)!;
    expect(known).toMatchObject({ role: 'developer', keyPrefix: 'apps/ci/', expiresAtMs: start + 3600_000 });
    expect(secretMatches(parsed.secret, known.secretHash)).toBe(true);
    expect(JSON.stringify(raft.proposals)).not.toContain(parsed.secret);
    clock.now = start + 3600_000;
    expect(auth.lookupToken(body.accessor)).toBeUndefined();
  });

  it('names an unnamed token after its role and accessor, and refuses a second token of the same name with 409', async () => {
    const unnamed = (await post({ role: 'viewer' })).json();
    expect(unnamed.name).toBe(`viewer-${unnamed.accessor}`);
    expect(unnamed.expiresAt).toBeNull();
    expect((await post({ name: 'ops', role: 'operator' })).statusCode).toBe(201);
    const again = await post({ name: 'ops', role: 'admin' });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('TOKEN_EXISTS');
  });

  it.each([
    [{ name: 'x', role: 'root' }, 'body.role'],
    [{ name: 'x' }, 'body.role'],
    [{ name: 'a b', role: 'viewer' }, 'body.name'],
    [{ name: 'x', role: 'viewer', ttlS: 0 }, 'body.ttlS'],
    [{ name: 'x', role: 'viewer', ttlS: 1.5 }, 'body.ttlS'],
    [{ name: 'x', role: 'viewer', keyPrefix: 'a b' }, 'body.keyPrefix'],
    [{ name: 'x', role: 'viewer', secret: 'mine' }, 'body.secret'],
    [{ role: 'worker', name: 'w' }, 'body.name'],
    [{ role: 'manager', keyPrefix: 'apps/' }, 'body.keyPrefix'],
    [{ name: 'x', role: 'admin', keyPrefix: 'apps/' }, 'body.keyPrefix'],
  ])('refuses %j with 400 INVALID_BODY naming %s', async (payload, field) => {
    const res = await post(payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('INVALID_BODY');
    expect(res.json().error.message).toMatch(new RegExp(`^${field.replace('.', '\\.')}\\b`));
    expect(raft.proposals).toEqual([]);
  });

  it('role worker or manager gives a join token carrying the CA digest, valid for 24 h by default', async () => {
    const res = await post({ role: 'worker' });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ token: string }>();
    const parsed = parseJoinToken(body.token)!;
    expect(body).toEqual({
      token: expect.stringMatching(/^MKTKN-1-/) as string, accessor: joinTokenAccessor(hashSecret(parsed.secret)), role: 'worker', expiresAt: '2030-01-02T00:00:00.000Z',
    });
    expect(parsed.caDigest).toBe(caDigest(caCertPem));
    expect(raft.sm.auth.joinToken(hashSecret(parsed.secret), start)).toMatchObject({ role: 'worker' });
    const short = (await post({ role: 'manager', ttlS: 60 })).json();
    expect(short.expiresAt).toBe('2030-01-01T00:01:00.000Z');
  });

  it('an insecure cluster (no CA) issues no join tokens, and says why', async () => {
    const insecure = buildManagerApp({ service: new FakeManagerService(), auth: service(raft) });
    const res = await insecure.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { role: 'worker' } });
    await insecure.close();
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({ code: 'INVALID_BODY', message: expect.stringMatching(/^body\.role: .*insecure.*no CA/) as string });
  });

  it('an insecure cluster makes no API tokens either (no route would ask for one), and lists and revokes none, saying so alike', async () => {
    const insecure = buildManagerApp({ service: new FakeManagerService(), auth: service(raft), insecure: true });
    const answers = [
      await insecure.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { role: 'viewer' } }),
      await insecure.inject({ method: 'GET', url: '/v1/auth/tokens' }),
      // Not 404 TOKEN_NOT_FOUND, as if this one token were missing; whatever the ref, a whole token's shape included.
      await insecure.inject({ method: 'DELETE', url: '/v1/auth/tokens/abc' }),
      await insecure.inject({ method: 'DELETE', url: '/v1/auth/tokens/0123456789abcdef' }),
      await insecure.inject({ method: 'DELETE', url: `/v1/auth/tokens/mk_0123456789abcdef_${'s'.repeat(43)}` }),
    ];
    await insecure.close();
    for (const res of answers) {
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toEqual({ code: 'INVALID_BODY', message: 'this cluster is insecure and has no tokens: every route answers without one' });
    }
    expect(raft.proposals).toEqual([]);
  });

  it('past the bound the answer is 409 TOKEN_LIMIT_REACHED', async () => {
    const small = new InstantRaft(new KvStateMachine({ auth: { tokensMax: 1 } }));
    const bounded = buildManagerApp({ service: new FakeManagerService(), auth: service(small) });
    const first = await bounded.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { role: 'viewer' } });
    const second = await bounded.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { role: 'viewer' } });
    await bounded.close();
    expect(first.statusCode).toBe(201);
    expect(second.statusCode).toBe(409);
    expect(second.json().error.code).toBe('TOKEN_LIMIT_REACHED');
  });

  it("passes the service's failures through (503 NO_LEADER)", async () => {
    raft.failNext = new MinkubeError('NO_LEADER', 'no leader yet');
    const res = await post({ role: 'viewer' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('NO_LEADER');
  });
});

describe('token names that could be taken for another reference', () => {
  it.each([
    ['78c5484c8186d41b', "16 hex digits is the shape of a token's accessor"],
    ['78C5484C8186D41B', "16 hex digits is the shape of a token's accessor"],
    ['join-29f5d111cc8c6896', "a name starting with join- has the shape of a join token's accessor"],
    ['Join-ops', "a name starting with join- has the shape of a join token's accessor"],
    ['MKTKN-1-x', 'a name starting with MKTKN- has the shape of a join token'],
    ['mktkn-ci', 'a name starting with MKTKN- has the shape of a join token'],
    // The CLI reads the accessor out of mk_<16 hex>_...: it would revoke that token instead.
    ['mk_78c5484c8186d41b_x', 'a name starting with mk_ has the shape of an API token'],
    ['MK_ops', 'a name starting with mk_ has the shape of an API token'],
    // A CA rotation names the cluster folder's new admin token bootstrap-<its accessor>.
    ['bootstrap-78c5484c8186d41b', "bootstrap-<16 hex digits> is the name a CA rotation gives the cluster folder's new admin token"],
    ['Bootstrap-78C5484C8186D41B', "bootstrap-<16 hex digits> is the name a CA rotation gives the cluster folder's new admin token"],
  ])('refuses the name %s with 400 INVALID_BODY naming body.name and why, proposing nothing', async (name, why) => {
    const res = await post({ name, role: 'viewer' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({
      code: 'INVALID_BODY',
      message: `body.name: "${name}" could be taken for another token: ${why}, and minkube token revoke and DELETE /v1/auth/tokens/:ref take those too; choose another name`,
    });
    expect(raft.proposals).toEqual([]);
  });

  it('a name that merely holds hex digits, join or mk is taken', async () => {
    for (const name of ['78c5484c8186d41b0', 'ci-join-bot', 'x78c5484c8186d41b', 'mkdocs_bot', 'prometheus', 'bootstrap-ci', 'bootstrap-78c5484c8186d41b0', 'bootstrap-78c5484c8186d41']) {
      expect((await post({ name, role: 'viewer' })).statusCode, name).toBe(201);
    }
  });

  it('a token stored with such a name before (an older manager) loads, and revoking by that string takes the accessor first, then the name', async () => {
    const operator = (await post({ name: 't-operator', role: 'operator' })).json<{ accessor: string }>();
    // As an older manager proposed them: the log and snapshots keep such names, and they apply as they always did.
    const named = [operator.accessor, 'join-29f5d111cc8c6896', 'MKTKN-1-x'].map((name) => ({ ...newApiToken(), name }));
    for (const t of named) {
      const r = await raft.proposeCommand({ op: 'auth.tokenCreate', accessor: t.accessor, secretHash: t.secretHash, name: t.name, role: 'viewer', expiresAtMs: null, atMs: clock.now });
      expect(r.ok).toBe(true);
    }
    const restored = new KvStateMachine();
    restored.restore(await raft.sm.captureSnapshot()());
    expect(restored.auth.listTokens().map((t) => t.name)).toEqual(raft.sm.auth.listTokens().map((t) => t.name));

    // The string is t-operator's accessor and the legacy viewer's name: the accessor wins, every time.
    const first = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${operator.accessor}` });
    expect(first.json()).toEqual({ accessor: operator.accessor, revoked: true });
    expect(auth.lookupToken(named[0]!.accessor)).toBeDefined();
    // No token has that accessor any more: the name is the only token it can mean.
    const second = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${operator.accessor}` });
    expect(second.json()).toEqual({ accessor: named[0]!.accessor, revoked: true });
    // join-<16 hex> that is no join token's accessor: the API token of that name.
    const join = await app.inject({ method: 'DELETE', url: '/v1/auth/tokens/join-29f5d111cc8c6896' });
    expect(join.json()).toEqual({ accessor: named[1]!.accessor, revoked: true });
    const gone = await app.inject({ method: 'DELETE', url: '/v1/auth/tokens/join-29f5d111cc8c6896' });
    expect(gone.json().error).toEqual({ code: 'TOKEN_NOT_FOUND', message: 'no join token with accessor join-29f5d111cc8c6896 (GET /v1/auth/tokens lists them)' });
    // MKTKN-... is never taken as :ref (a whole join token's shape): such a token is revoked by its accessor.
    expect((await app.inject({ method: 'DELETE', url: '/v1/auth/tokens/MKTKN-1-x' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${named[2]!.accessor}` })).json()).toEqual({ accessor: named[2]!.accessor, revoked: true });
  });
});

describe('GET and DELETE /v1/auth/tokens', () => {
  it('lists tokens oldest first without secrets or hashes; a revoked one is gone from the list and from checks', async () => {
    const a = (await post({ name: 'a', role: 'admin' })).json<{ accessor: string; createdAt: string }>();
    const b = (await post({ name: 'b', role: 'developer', keyPrefix: 'apps/' })).json();
    const list = await app.inject({ method: 'GET', url: '/v1/auth/tokens' });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual({
      items: [
        { accessor: a.accessor, name: 'a', role: 'admin', createdAt: a.createdAt, expiresAt: null },
        { accessor: b.accessor, name: 'b', role: 'developer', keyPrefix: 'apps/', createdAt: b.createdAt, expiresAt: null },
      ],
      joinTokens: [],
      nextCursor: null,
    });
    expect(list.body).not.toMatch(/[0-9a-f]{64}/);

    const del = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${a.accessor}` });
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ accessor: a.accessor, revoked: true });
    expect(auth.lookupToken(a.accessor)).toBeUndefined();
    const left = (await app.inject({ method: 'GET', url: '/v1/auth/tokens' })).json<{ items: { name: string }[] }>();
    expect(left.items.map((t) => t.name)).toEqual(['b']);

    const again = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${a.accessor}` });
    expect(again.statusCode).toBe(404);
    expect(again.json().error.code).toBe('TOKEN_NOT_FOUND');
  });

  it('takes an accessor in upper case as the accessor (accessors are lower-case hex), an API token\'s and a join token\'s', async () => {
    const a = (await post({ name: 'upper-a', role: 'viewer' })).json<{ accessor: string }>();
    const del = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${a.accessor.toUpperCase()}` });
    expect(del.statusCode, del.body).toBe(200);
    expect(del.json()).toEqual({ accessor: a.accessor, revoked: true });
    expect(auth.lookupToken(a.accessor)).toBeUndefined();
    const gone = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${a.accessor.toUpperCase()}` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error).toEqual({ code: 'TOKEN_NOT_FOUND', message: `no token with accessor ${a.accessor.toUpperCase()} (GET /v1/auth/tokens lists names and accessors)` });
    const join = (await post({ role: 'worker' })).json<{ accessor: string }>();
    const delJoin = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${join.accessor.toUpperCase()}` });
    expect(delJoin.statusCode, delJoin.body).toBe(200);
    expect(delJoin.json()).toEqual({ accessor: join.accessor, revoked: true });
  });

  it("revokes a token by its name too; an unknown name is 404 saying where names are listed", async () => {
    const c = (await post({ name: 'ci-bot', role: 'developer' })).json<{ accessor: string }>();
    const del = await app.inject({ method: 'DELETE', url: '/v1/auth/tokens/ci-bot' });
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ accessor: c.accessor, revoked: true });
    expect(auth.lookupToken(c.accessor)).toBeUndefined();
    const again = await app.inject({ method: 'DELETE', url: '/v1/auth/tokens/ci-bot' });
    expect(again.statusCode).toBe(404);
    expect(again.json().error).toMatchObject({ code: 'TOKEN_NOT_FOUND', message: expect.stringContaining('GET /v1/auth/tokens') as string });
  });

  it.each(['-not%20a%20name', '%00', '..%2f..'])('a ref that is neither an accessor nor a token name (%s) is 400 INVALID_PARAM saying what it may be', async (ref) => {
    const res = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${ref}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({
      code: 'INVALID_PARAM', message: "params.ref: expected an API token's accessor (16 hex digits) or name, or a join token's accessor (join-<16 hex>)",
    });
  });
});

describe('join tokens in GET and DELETE /v1/auth/tokens', () => {
  /** A manager app that also serves POST /v1/join, checking join tokens against the same applied state. */
  async function withJoin(audit?: AuditService): Promise<FastifyInstance> {
    const m1 = await issueNodeKeyAndCert({ caCertPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'test', sans: { ips: ['127.0.0.1'], dns: [] } });
    const join = new JoinServiceImpl({
      material: { caCertPem, caKeyPem: ca.keyPem, ...m1, identity: { id: 'm1', role: 'manager', clusterId: 'test' } },
      clock, joinToken: (h, nowMs) => raft.sm.auth.joinToken(h, nowMs), managers: () => [], worker: () => undefined,
      ...(audit === undefined ? {} : { audit }),
    });
    const joinApp = buildManagerApp({ service: new FakeManagerService(), auth, join, ...(audit === undefined ? {} : { audit }) });
    await joinApp.ready();
    return joinApp;
  }

  async function joinWith(joinApp: FastifyInstance, token: string, id: string, asked: { role?: 'worker' | 'manager'; requestId?: string } = {}) {
    const { keyPem } = await generateNodeKey();
    const csr = await createCsr({ keyPem, id, role: asked.role ?? 'worker', clusterId: 'test' });
    const headers = asked.requestId === undefined ? {} : { 'x-request-id': asked.requestId };
    return joinApp.inject({ method: 'POST', url: '/v1/join', headers, payload: { token, id, csr, addresses: ['127.0.0.1:7001'] } });
  }

  it('POST /v1/join writes an audit line for every certificate it issues (the join token by accessor and role, the node id), and for a join a live token could not buy', async () => {
    const dir = mkdtempSync(joinPath(tmpdir(), 'minkube-join-audit-'));
    const audit = await AuditLog.open({ dir, clock, logger: pino({ level: 'silent' }) });
    const joinApp = await withJoin(audit);
    try {
      const worker = (await post({ role: 'worker' })).json<{ token: string; accessor: string }>();
      expect((await joinWith(joinApp, worker.token, 'w1', { requestId: 'r-1' })).statusCode).toBe(200);
      expect((await joinWith(joinApp, worker.token, 'w2', { requestId: 'r-2' })).statusCode).toBe(200);
      // A worker join token with a manager's CSR: refused after the token checked out, and said so.
      expect((await joinWith(joinApp, worker.token, 'm9', { role: 'manager', requestId: 'r-3' })).json().error.code).toBe('INVALID_BODY');
      // A token that checks out as none is the 401 every refused request is: no line names a token for it.
      const stranger = `MKTKN-1-${caDigest(caCertPem)}-${'A'.repeat(43)}`;
      expect((await joinWith(joinApp, stranger, 'w4', { requestId: 'r-4' })).statusCode).toBe(401);
      const served = { time: '2030-01-01T00:00:00.000Z', principal: { token: worker.accessor, role: 'worker' }, route: 'POST /v1/join' };
      const byToken = await joinApp.inject({ method: 'GET', url: `/v1/audit?principal=${worker.accessor}` });
      expect(byToken.json().items).toEqual([
        { seq: 1, ...served, target: 'w1', outcome: 'ok', requestId: 'r-1' },
        { seq: 2, ...served, target: 'w2', outcome: 'ok', requestId: 'r-2' },
        { seq: 3, ...served, target: 'm9', outcome: 'INVALID_BODY', requestId: 'r-3' },
      ]);
      const all = (await joinApp.inject({ method: 'GET', url: '/v1/audit' })).json<{ items: unknown[] }>().items;
      expect(all.slice(3)).toEqual([{ seq: 4, time: served.time, principal: null, route: 'POST /v1/join', outcome: 'UNAUTHENTICATED', requestId: 'r-4' }]);
      expect(JSON.stringify(all)).not.toContain(parseJoinToken(worker.token)!.secret);
    } finally {
      await joinApp.close();
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('are listed by their accessor and role, never a secret or hash; DELETE by accessor revokes one, and POST /v1/join then answers 401', async () => {
    const joinApp = await withJoin();
    try {
      const worker = (await post({ role: 'worker', ttlS: 600 })).json<{ token: string; accessor: string }>();
      const manager = (await post({ role: 'manager' })).json<{ accessor: string }>();
      expect(worker.accessor).toMatch(/^join-[0-9a-f]{16}$/);
      const list = await app.inject({ method: 'GET', url: '/v1/auth/tokens' });
      expect(list.json().joinTokens).toEqual([
        { accessor: worker.accessor, role: 'worker', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-01T00:10:00.000Z' },
        { accessor: manager.accessor, role: 'manager', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-02T00:00:00.000Z' },
      ]);
      expect(list.body).not.toMatch(/[0-9a-f]{64}/);
      expect(list.body).not.toContain(parseJoinToken(worker.token)!.secret);
      expect((await joinWith(joinApp, worker.token, 'w1')).statusCode).toBe(200);

      const del = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${worker.accessor}` });
      expect(del.statusCode).toBe(200);
      expect(del.json()).toEqual({ accessor: worker.accessor, revoked: true });
      expect(raft.proposals.at(-1)).toEqual({ op: 'auth.joinTokenRevoke', secretHash: hashSecret(parseJoinToken(worker.token)!.secret) });
      const refused = await joinWith(joinApp, worker.token, 'w2');
      expect(refused.statusCode).toBe(401);
      expect(refused.json().error).toEqual({ code: 'UNAUTHENTICATED', message: 'unknown, revoked or expired join token' });
      const left = (await app.inject({ method: 'GET', url: '/v1/auth/tokens' })).json<{ joinTokens: { accessor: string }[] }>();
      expect(left.joinTokens.map((j) => j.accessor)).toEqual([manager.accessor]);

      const again = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${worker.accessor}` });
      expect(again.statusCode).toBe(404);
      expect(again.json().error).toEqual({ code: 'TOKEN_NOT_FOUND', message: `no join token with accessor ${worker.accessor} (GET /v1/auth/tokens lists them)` });
    } finally {
      await joinApp.close();
    }
  });

  it('a whole token is refused as :ref (400, nothing revoked), as an API token is: URLs end up in logs', async () => {
    const join = (await post({ role: 'worker' })).json<{ token: string }>();
    const api = (await post({ role: 'viewer' })).json<{ token: string }>();
    // Cut short or mistyped, a token's shape still holds (part of) a secret: refused without echoing it too.
    for (const whole of [api.token, join.token, api.token.slice(0, -5), 'mk_0123456789abcdef_hunter2hunter2', `MKTKN-1-${'ab'.repeat(8)}-hunter2`]) {
      const res = await app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${encodeURIComponent(whole)}` });
      expect(res.statusCode, whole.slice(0, 8)).toBe(400);
      expect(res.json().error).toEqual({ code: 'INVALID_PARAM', message: expect.stringMatching(/^params\.ref: a whole token, secret included, is never taken here/) as string });
      expect(res.body).not.toContain(whole.slice(-6));
    }
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.joinTokenCreate', 'auth.tokenCreate']);
  });
});

describe('bootstrap', () => {
  const record = { accessor: '00000000000000b0', secretHash: 'c'.repeat(64), sessionKey: Buffer.alloc(32, 9).toString('base64') };

  it('a new leadership proposes it once; a second manager leading later adds no entry; the first counts', async () => {
    const first = service(raft, { bootstrap: record });
    first.onRoleChange('follower', 1);
    expect(raft.proposals).toEqual([]);
    expect(await first.maybeBootstrap(2)).toBe(true);
    const second = service(raft, { bootstrap: { ...record, accessor: '00000000000000b1' } });
    expect(await second.maybeBootstrap(3)).toBe(true);
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.bootstrap']);
    expect(auth.lookupToken(record.accessor)).toMatchObject({ name: 'bootstrap', role: 'admin', secretHash: record.secretHash });
    expect(auth.sessionKey()).toEqual(new Uint8Array(Buffer.alloc(32, 9)));
  });

  it('a record without a session key gets a fresh one of 32 bytes', async () => {
    const { sessionKey: _key, ...withoutKey } = record;
    expect(await service(raft, { bootstrap: withoutKey }).maybeBootstrap(2)).toBe(true);
    expect(auth.sessionKey()).toHaveLength(32);
    expect(auth.lookupToken(record.accessor)).toEqual({
      accessor: record.accessor, name: 'bootstrap', role: 'admin', secretHash: record.secretHash, expiresAtMs: null,
    });
  });

  it('a failed attempt answers false and the next leadership tries again', async () => {
    const s = service(raft, { bootstrap: record });
    raft.failNext = new MinkubeError('NO_LEADER', 'lost it');
    expect(await s.maybeBootstrap(2)).toBe(false);
    expect(raft.sm.auth.bootstrapped()).toBe(false);
    s.onRoleChange('leader', 3);
    s.onRoleChange('leader', 3);
    await new Promise((r) => setImmediate(r));
    expect(raft.sm.auth.bootstrapped()).toBe(true);
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.bootstrap']);
  });
});

describe('the admin token made with a new CA (a rotation keeps the bootstrapped state)', () => {
  const old = { accessor: '00000000000000b0', secretHash: 'c'.repeat(64) };
  const rotated = { accessor: '00000000000000c0', secretHash: 'd'.repeat(64) };
  /** The cluster folder's mark, shared by every manager started from the folder. */
  const folderMark = (): AdminTokenMark & { marked: boolean } => {
    const m = { marked: true, pending: async () => m.marked, clear: async () => void (m.marked = false) };
    return m;
  };

  it('a leader adds a pending token once, as an admin token, and clears the mark; later leaders add nothing', async () => {
    expect(await service(raft, { bootstrap: old }).maybeBootstrap(1)).toBe(true);
    const mark = folderMark();
    expect(await service(raft, { bootstrap: rotated, adminTokenMark: mark }).maybeBootstrap(2)).toBe(true);
    expect(auth.lookupToken(rotated.accessor)).toEqual({
      accessor: rotated.accessor, name: `bootstrap-${rotated.accessor}`, role: 'admin', secretHash: rotated.secretHash, expiresAtMs: null,
    });
    expect(auth.lookupToken(old.accessor)).toMatchObject({ name: 'bootstrap', role: 'admin' });
    expect(mark.marked).toBe(false);
    expect(await service(raft, { bootstrap: rotated, adminTokenMark: mark }).maybeBootstrap(3)).toBe(true);
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.bootstrap', 'auth.tokenCreate']);
  });

  it('a revoked token stays revoked: its mark was cleared when it was added, and an unmarked token is never added', async () => {
    const mark = folderMark();
    await service(raft, { bootstrap: old }).maybeBootstrap(1);
    await service(raft, { bootstrap: rotated, adminTokenMark: mark }).maybeBootstrap(2);
    await raft.proposeCommand({ op: 'auth.tokenRevoke', accessor: rotated.accessor });
    await raft.proposeCommand({ op: 'auth.tokenRevoke', accessor: old.accessor });
    await service(raft, { bootstrap: rotated, adminTokenMark: mark }).maybeBootstrap(3);
    await service(raft, { bootstrap: old, adminTokenMark: { ...folderMark(), pending: async () => false } }).maybeBootstrap(4);
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.bootstrap', 'auth.tokenCreate', 'auth.tokenRevoke', 'auth.tokenRevoke']);
    expect(auth.lookupToken(rotated.accessor)).toBeUndefined();
    expect(auth.lookupToken(old.accessor)).toBeUndefined();
  });

  it("a new cluster's bootstrap token only clears the mark", async () => {
    const mark = folderMark();
    expect(await service(raft, { bootstrap: old, adminTokenMark: mark }).maybeBootstrap(1)).toBe(true);
    expect(raft.proposals.map((c) => c.op)).toEqual(['auth.bootstrap']);
    expect(mark.marked).toBe(false);
  });

  it('a failed attempt keeps the mark, and the next leadership adds the token', async () => {
    await service(raft, { bootstrap: old }).maybeBootstrap(1);
    const mark = folderMark();
    const s = service(raft, { bootstrap: rotated, adminTokenMark: mark });
    raft.failNext = new MinkubeError('NO_LEADER', 'lost it');
    expect(await s.maybeBootstrap(2)).toBe(false);
    expect(mark.marked).toBe(true);
    expect(auth.lookupToken(rotated.accessor)).toBeUndefined();
    await s.maybeBootstrap(3);
    expect(auth.lookupToken(rotated.accessor)).toMatchObject({ role: 'admin' });
    expect(mark.marked).toBe(false);
  });
});
