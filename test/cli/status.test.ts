// `minkube status` for a member that runs but will not show its GET /v1/cluster (NOT_READY: a manager recovering its
// storage from an empty log cannot check a token until it has applied the cluster's first admin token). It is
// reachable, and its open GET /status's `self` gives its role and storage progress (never the reason text, which names
// its data directory). First the pieces (src/cli/status.ts), then the command against fake managers, one of which
// refuses every token as such a manager does.
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpsOptions } from '../../src/api/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { StatusFacts } from '../../src/api/routes/status.js';
import { memberStatusOf, statusText, viewOf, type MemberView } from '../../src/cli/status.js';
import type { ClusterMemberView, ClusterView, StatusSelf } from '../../src/contracts/services.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { newApiToken } from '../../src/security/tokens.js';
import { defaultView, FakeManagerService } from '../api/fake-service.js';
import { freePort } from '../support/cluster.js';
import { runCli } from '../support/cli.js';

const notReadyMessage = "this manager has not applied the cluster's first admin token yet (the cluster is starting, or this manager is catching up): retry, or ask another manager";
const recoveringSelf: StatusSelf = { id: 'm2', role: 'follower', storage: 'recovering', storageTargetIndex: 2000, commitIndex: 0 };

const member = (id: string, voter = true): ClusterMemberView => ({ id, raftAddress: `127.0.0.1:700${id.slice(1)}`, apiAddress: `127.0.0.1:800${id.slice(1)}`, voter, reachable: true });

/** A client whose GET /v1/cluster fails with `err` and whose GET /status answers `status`; records the paths asked. */
function stubClient(err: Error, status: unknown): { client: Parameters<typeof viewOf>[0]; asked: string[] } {
  const asked: string[] = [];
  const client = {
    cluster: (): Promise<ClusterView> => {
      asked.push('/v1/cluster');
      return Promise.reject(err);
    },
    request: <T>(_method: string, path: string): Promise<T> => {
      asked.push(path);
      return status instanceof Error ? Promise.reject(status) : Promise.resolve(status as T);
    },
  } as Parameters<typeof viewOf>[0];
  return { client, asked };
}

describe('a member that answers but does not show its view', () => {
  it('is asked its open GET /status, and its `self` kept', async () => {
    const { client, asked } = stubClient(new MinkubeError('NOT_READY', notReadyMessage), { status: 'down', self: recoveringSelf });
    const v = await viewOf(client);
    expect(asked).toEqual(['/v1/cluster', '/status?format=json']);
    expect(v).toEqual({ view: null, error: { code: 'NOT_READY', message: notReadyMessage, answered: true }, self: recoveringSelf });
  });

  it('is not asked again when it could not be reached; an older manager (no `self`) or an odd one gives none', async () => {
    const cut = stubClient(new MinkubeError('UNREACHABLE', 'cannot reach https://127.0.0.1:8002 (ECONNREFUSED)', { cause: new Error('ECONNREFUSED') }), {});
    expect(await viewOf(cut.client)).toMatchObject({ view: null, error: { code: 'UNREACHABLE', answered: false } });
    expect(cut.asked).toEqual(['/v1/cluster']);
    const slow = stubClient(new MinkubeError('TIMEOUT', 'GET https://127.0.0.1:8002/v1/cluster: no answer within 1000 ms'), {});
    expect(await viewOf(slow.client)).toMatchObject({ error: { code: 'TIMEOUT', answered: false } });
    for (const status of [{ status: 'down' }, { self: { ...recoveringSelf, storageTargetIndex: -1 } }, { self: { ...recoveringSelf, role: 'boss' } }, null, new MinkubeError('NOT_FOUND', 'no route')]) {
      expect((await viewOf(stubClient(new MinkubeError('NOT_READY', notReadyMessage), status).client)).self).toBeNull();
    }
  });

  it('shows as reachable and recovering, its progress from `self`, its reason as not shown', () => {
    const v: MemberView = { view: null, error: { code: 'NOT_READY', message: notReadyMessage, answered: true }, self: recoveringSelf };
    const row = memberStatusOf(member('m2'), v, null);
    expect(row).toEqual({
      id: 'm2', apiAddress: '127.0.0.1:8002', reachable: true, leader: false, voter: true, role: 'follower', term: null, commitIndex: 0, appliedIndex: null,
      storage: 'recovering', storageReason: null, storageTargetIndex: 2000, reachableFromLeader: null, error: notReadyMessage, errorCode: 'NOT_READY',
    });
    // A learner is named so, as from its view; a `self` naming another manager (a stranger at that address) is not used.
    expect(memberStatusOf(member('m2', false), v, null).role).toBe('learner');
    expect(memberStatusOf(member('m3'), v, null)).toMatchObject({ reachable: true, role: null, storage: null, storageTargetIndex: null, commitIndex: null });
  });

  it('prints "recovering COMMIT/TARGET", why it shows no reason, and that it is reachable but not ready; a down member as before', () => {
    const intact = defaultView({ id: 'm1', role: 'follower', term: 5, leaderId: null, commitIndex: 2000, appliedIndex: 2000, noQuorumReason: '2 of 3 voters (m2, m3) are recovering' });
    const members = [
      memberStatusOf(member('m1'), { view: intact }, null),
      memberStatusOf(member('m2'), { view: null, error: { code: 'NOT_READY', message: notReadyMessage, answered: true }, self: recoveringSelf }, null),
      memberStatusOf(member('m3'), { view: null, error: { code: 'UNREACHABLE', message: 'cannot reach https://127.0.0.1:8003 (ECONNREFUSED)', answered: false } }, null),
    ];
    const lines = statusText({ leaderId: null, term: null, members, noQuorumReason: intact.noQuorumReason }).join('\n').split('\n');
    expect(lines[1]).toMatch(/^\s+m1\s+follower\s+5\s+2000\s+2000\s+ok\s+yes\s+127\.0\.0\.1:8001$/);
    expect(lines[2]).toMatch(/^\s+m2\s+follower\s+-\s+0\s+-\s+recovering 0\/2000\s+yes\s+127\.0\.0\.1:8002$/);
    expect(lines[3]).toMatch(/^\s+m3\s+down\s+-\s+-\s+-\s+-\s+no\s+127\.0\.0\.1:8003$/);
    expect(lines.slice(4)).toEqual([
      'leader: none known',
      'm2 is recovering its storage: why is in its log ("storage recovering"), since it does not show its view',
      `m2 is reachable but not ready (NOT_READY: ${notReadyMessage})`,
      'no leader: 2 of 3 voters (m2, m3) are recovering',
    ]);
    // Another refusal is told apart as well.
    const refused = memberStatusOf(member('m2'), { view: null, error: { code: 'UNAUTHENTICATED', message: 'unknown, revoked or expired token', answered: true }, self: null }, null);
    expect(statusText({ leaderId: null, term: null, members: [refused], noQuorumReason: null }).slice(1)).toEqual([
      'leader: none known',
      'm2 is reachable but did not show its view (UNAUTHENTICATED: unknown, revoked or expired token)',
    ]);
  });
});

describe('a learner in the status table (outside tester: a down learner showed as `down`, one refusing to rejoin as `precandidate`)', () => {
  const learnerView = (role: ClusterView['role']): MemberView => ({ view: defaultView({ id: 'm4', role, term: 7, leaderId: role === 'follower' ? 'm1' : null, commitIndex: 40, appliedIndex: 40 }) });
  const down: MemberView = { view: null, error: { code: 'UNREACHABLE', message: 'cannot reach https://127.0.0.1:8004 (ECONNREFUSED)', answered: false } };

  it('is always marked a learner: following, down, or campaigning by its own account (never shown as a candidate)', () => {
    const rows = [
      memberStatusOf(member('m1'), { view: defaultView({ id: 'm1', role: 'leader', term: 7, leaderId: 'm1', commitIndex: 40, appliedIndex: 40 }) }, 'm1'),
      memberStatusOf(member('m4', false), learnerView('follower'), 'm1'),
      { ...memberStatusOf(member('m5', false), down, 'm1'), id: 'm5' },
      { ...memberStatusOf(member('m6', false), learnerView('precandidate'), 'm1'), id: 'm6' },
      { ...memberStatusOf(member('m7'), down, 'm1'), id: 'm7' },
    ];
    expect(rows.map((r) => [r.id, r.voter, r.role, r.ownRole])).toEqual([
      ['m1', true, 'leader', undefined],
      ['m4', false, 'learner', undefined],
      ['m5', false, null, undefined],
      ['m6', false, 'learner', 'precandidate'],
      ['m7', true, null, undefined],
    ]);
    const lines = statusText({ leaderId: 'm1', term: 7, members: rows, noQuorumReason: null });
    const table = lines[0]!.split('\n').slice(1);
    expect(table[0]).toMatch(/^\*\s+m1\s+leader\s+7\s/);
    expect(table[1]).toMatch(/^\s+m4\s+learner\s+7\s/);
    expect(table[2]).toMatch(/^\s+m5\s+learner \(down\)\s+-\s/);
    expect(table[3]).toMatch(/^\s+m6\s+learner \(not following\)\s+7\s/);
    expect(table[4]).toMatch(/^\s+m7\s+down\s+-\s/);
    expect(lines[0]).not.toMatch(/candidate/);
    expect(lines.slice(1)).toEqual(['leader: m1 (term 7)', "m6 is a learner in the leader's configuration but says it is precandidate: it does not follow the leader"]);
  });
});

describe('a member that did not answer this client in time, but that the leader reaches (outside tester: every slow follower showed `down`, REACHABLE `no`)', () => {
  it('is shown up as the leader sees it, REACHABLE `no answer (TIMEOUT)`, with a line saying so; one the leader does not reach either stays down', () => {
    const slow: MemberView = { view: null, error: { code: 'TIMEOUT', message: 'GET https://127.0.0.1:8002/v1/cluster: no answer within 1000 ms', answered: false } };
    const leader = defaultView({ id: 'm1', role: 'leader', term: 7, leaderId: 'm1', commitIndex: 40, appliedIndex: 40 });
    const rows = [
      memberStatusOf(member('m1'), { view: leader }, 'm1', true),
      memberStatusOf(member('m2'), slow, 'm1', true),
      memberStatusOf(member('m3', false), { ...slow, error: { ...slow.error!, code: 'UNREACHABLE', message: 'cannot reach https://127.0.0.1:8003 (EHOSTUNREACH)' } }, 'm1', true),
      memberStatusOf(member('m4'), slow, 'm1', false),
      memberStatusOf(member('m5'), slow, null),
    ];
    expect(rows.map((r) => [r.id, r.reachable, r.reachableFromLeader, r.errorCode])).toEqual([
      ['m1', true, true, undefined],
      ['m2', false, true, 'TIMEOUT'],
      ['m3', false, true, 'UNREACHABLE'],
      ['m4', false, false, 'TIMEOUT'],
      ['m5', false, null, 'TIMEOUT'],
    ]);
    const lines = statusText({ leaderId: 'm1', term: 7, members: rows, noQuorumReason: null });
    const table = lines[0]!.split('\n').slice(1);
    expect(table[1]).toMatch(/^\s+m2\s+up \(leader reaches it\)\s+-\s+-\s+-\s+-\s+no answer \(TIMEOUT\)\s+127\.0\.0\.1:8002$/);
    expect(table[2]).toMatch(/^\s+m3\s+learner \(leader reaches it\)\s.*\sno answer \(UNREACHABLE\)\s/);
    expect(table[3]).toMatch(/^\s+m4\s+down\s+-\s+-\s+-\s+-\s+no\s/);
    expect(table[4]).toMatch(/^\s+m5\s+down\s+-\s+-\s+-\s+-\s+no\s/);
    expect(lines.slice(1)).toEqual([
      'leader: m1 (term 7)',
      "m2 did not answer this client (TIMEOUT: GET https://127.0.0.1:8002/v1/cluster: no answer within 1000 ms), but the leader reaches it: it is slow to answer, or out of this client's reach",
      "m3 did not answer this client (UNREACHABLE: cannot reach https://127.0.0.1:8003 (EHOSTUNREACH)), but the leader reaches it: it is slow to answer, or out of this client's reach",
    ]);
  });
});

describe('minkube status against a manager that refuses every token for now', () => {
  const intact = new FakeManagerService();
  const recovering = new FakeManagerService();
  let facts: StatusFacts;
  // Over HTTPS, as a secure cluster's managers serve: the CLI sends its token over TLS only.
  const apps: FastifyInstance[] = [];
  let api: string;
  let downPort: number;
  const env = { MINKUBE_TOKEN: newApiToken().token, MINKUBE_CONFIG: '' };

  beforeAll(async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const https = async (id: string): Promise<HttpsOptions> => {
      const node = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
      return { key: node.keyPem, cert: node.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false };
    };
    apps.push(
      buildManagerApp({ service: intact, https: await https('m1') }),
      // As a secure manager that has applied nothing: every token is one it may not know yet.
      buildManagerApp({ service: recovering, https: await https('m2'), security: { resolveToken: () => null, authReady: () => false }, status: { facts: () => facts } }),
    );
    const urls = await Promise.all(apps.map((a) => a.listen({ host: '127.0.0.1', port: 0 })));
    api = urls[0]!;
    env.MINKUBE_CONFIG = join(mkdtempSync(join(tmpdir(), 'minkube-status-')), 'credentials.json');
    writeFileSync(env.MINKUBE_CONFIG, JSON.stringify({ clusterId: 'c1', apis: [api], ca: ca.certPem, token: env.MINKUBE_TOKEN }));
    downPort = await freePort();
    const members = [
      { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: urls[0]!.replace('https://', ''), voter: true, reachable: true },
      { id: 'm2', raftAddress: '127.0.0.1:7002', apiAddress: urls[1]!.replace('https://', ''), voter: true, reachable: true, storage: 'recovering' as const },
      { id: 'm3', raftAddress: '127.0.0.1:7003', apiAddress: `127.0.0.1:${downPort}`, voter: true, reachable: false },
    ];
    intact.view = defaultView({ id: 'm1', role: 'follower', term: 5, leaderId: null, commitIndex: 2000, appliedIndex: 2000, members, noQuorumReason: '2 of 3 voters (m2, m3) are recovering' });
    facts = { leaderId: null, votersReachable: 2, voters: 3, votersRecovering: 1, workersReady: 0, workers: 0, self: recoveringSelf };
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    rmSync(dirname(env.MINKUBE_CONFIG), { recursive: true, force: true });
  });

  it('shows it running and recovering, not down', async () => {
    const r = await runCli(['--api', api, 'status'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s+m2\s+follower\s+-\s+0\s+-\s+recovering 0\/2000\s+yes\s/m);
    expect(r.stdout).toMatch(new RegExp(`^\\s+m3\\s+down\\s+-\\s+-\\s+-\\s+-\\s+no\\s+127\\.0\\.0\\.1:${downPort}$`, 'm'));
    expect(r.stdout).toContain('m2 is recovering its storage: why is in its log ("storage recovering")');
    expect(r.stdout).toContain(`m2 is reachable but not ready (NOT_READY: ${notReadyMessage})`);
    expect(r.stdout).toContain('no leader: 2 of 3 voters (m2, m3) are recovering');
  });

  it('--json: reachable, recovering with its target, no reason, and the refusal with its code', async () => {
    const r = await runCli(['--json', '--api', api, 'status'], env);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { members: Record<string, unknown>[] };
    expect(out.members.find((m) => m.id === 'm2')).toMatchObject({
      reachable: true, role: 'follower', term: null, commitIndex: 0, appliedIndex: null, storage: 'recovering', storageReason: null, storageTargetIndex: 2000,
      error: notReadyMessage, errorCode: 'NOT_READY',
    });
    expect(out.members.find((m) => m.id === 'm3')).toMatchObject({ reachable: false, storage: null, errorCode: 'UNREACHABLE' });
  });
});

describe('minkube status through a manager the leader no longer lists', () => {
  // m3 was just removed and has not heard of it: it still answers its stale view (itself a voter), while the leader
  // m2 lists m1 and m2 only. The leader's configuration says who is a member.
  const removed = new FakeManagerService();
  const leader = new FakeManagerService();
  const apps: FastifyInstance[] = [buildManagerApp({ service: removed }), buildManagerApp({ service: leader })];
  let urls: string[];

  beforeAll(async () => {
    urls = await Promise.all(apps.map((a) => a.listen({ host: '127.0.0.1', port: 0 })));
    const m2 = { id: 'm2', raftAddress: '127.0.0.1:7002', apiAddress: urls[1]!.replace('http://', ''), voter: true, reachable: true };
    const m3 = { id: 'm3', raftAddress: '127.0.0.1:7003', apiAddress: urls[0]!.replace('http://', ''), voter: true, reachable: true };
    removed.view = defaultView({ id: 'm3', role: 'precandidate', term: 7, leaderId: null, members: [m2, m3] });
    leader.view = defaultView({ id: 'm2', role: 'leader', term: 8, leaderId: 'm2', members: [m2] });
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
  });

  it('fails NOT_READY saying the leader does not list it, instead of showing its stale view', async () => {
    const r = await runCli(['--api', urls[0]!, 'status'], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NOT_READY: m3 is not a member of the cluster: the leader m2 (term 8) does not list it (it was removed); ask another manager');
    expect(r.stdout).toBe('');
  });
});
