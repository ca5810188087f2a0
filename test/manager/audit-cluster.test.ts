// The audit log in a cluster of real drivers: every manager records the same committed changes (the principal and
// request id travel inside the entry, or a membership change's context, so a change proposed through a follower
// reads the same on the leader), a restarted manager does not write the entries it replays twice, and a leadership
// transfer is a line of the managers that served it. The API's part over HTTPS on 127.0.41.1, ports 41000-41999.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenRecord } from '../../src/api/auth.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { HttpClient } from '../../src/client/http.js';
import type { AuditCommittedLine, AuditLine, AuditServedLine } from '../../src/contracts/services.js';
import { systemClock } from '../../src/lib/clock.js';
import { AuditLog } from '../../src/manager/audit.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { newApiToken } from '../../src/security/tokens.js';
import { freePortIn } from '../support/wait.js';
import { ctx, DriverCluster } from './driver-harness.js';

const root = mkdtempSync(join(tmpdir(), 'minkube-audit-cluster-'));
const logs = new Map<string, AuditLog>();
const logger = pino({ level: 'silent' });

async function openAudit(id: string, dir = root, opened = logs): Promise<AuditLog> {
  mkdirSync(join(dir, id), { recursive: true }); // a manager's data directory exists before its audit log opens
  const log = await AuditLog.open({ dir: join(dir, id), clock: systemClock, logger });
  opened.set(id, log);
  return log;
}

const cluster = new DriverCluster({
  listeners: (id) => {
    const log = logs.get(id)!;
    return { onApplied: (index, applied) => log.committed(index, applied), onEntryApplied: (entry) => log.entryApplied(entry) };
  },
});

afterAll(async () => {
  await cluster.close();
  for (const log of logs.values()) await log.close();
  rmSync(root, { recursive: true, force: true });
});

async function auditLines(id: string, dir = root, opened = logs): Promise<AuditLine[]> {
  await opened.get(id)!.flushed();
  const text = readFileSync(join(dir, id, 'audit.log'), 'utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditLine);
}

async function committedLines(id: string, dir = root, opened = logs): Promise<AuditCommittedLine[]> {
  return (await auditLines(id, dir, opened)).filter((l): l is AuditCommittedLine => 'index' in l);
}

/** What every manager must agree on: all but its own line number and the time it applied (checked apart below). */
const shared = ({ seq: _seq, time: _time, ...rest }: AuditCommittedLine): object => rest;

describe('the audit log across managers', () => {
  it('holds the same committed changes on every manager, with the principal and request id of the request', async () => {
    for (const id of ['m1', 'm2', 'm3']) await openAudit(id);
    await cluster.startAll();
    const leader = await cluster.leader();
    const follower = [...cluster.running.values()].find((n) => n.id !== leader.id)!;
    const principal = { a: '00000000000000a1', r: 'admin' };
    await follower.service.kvPut('app/password', 'hunter2', undefined, { requestId: 'req-put', deadlineMs: performance.now() + 10_000, principal });
    const atMs = Date.parse('2030-01-01T00:00:00Z');
    await leader.service.proposeCommand({ op: 'task.submit', taskId: 't-1', spec: { image: 'busybox' }, atMs }, performance.now() + 10_000, 'req-task', { n: 'm9', r: 'manager' });
    await leader.membership.addMember({ id: 'm4', raftAddress: 'raft-m4', apiAddress: 'api-m4' }, { ...ctx(), requestId: 'req-add', principal: { n: 'm4', r: 'manager' } });
    await cluster.converged();

    const [m1, m2, m3] = await Promise.all(['m1', 'm2', 'm3'].map((id) => committedLines(id)));
    expect(m2!.map(shared)).toEqual(m1!.map(shared));
    expect(m3!.map(shared)).toEqual(m1!.map(shared));
    expect(m1).toContainEqual(expect.objectContaining({ op: 'put', target: 'app/password', principal: { token: principal.a, role: 'admin' }, outcome: 'ok', requestId: 'req-put' }));
    // A command that carries its time is recorded at that time everywhere.
    for (const lines of [m1, m2, m3]) {
      expect(lines).toContainEqual(expect.objectContaining({ time: '2030-01-01T00:00:00.000Z', op: 'task.submit', target: 't-1', principal: { node: 'm9', role: 'manager' }, requestId: 'req-task' }));
    }
    // A membership change carries its principal and request id in its context (a joining manager is its own principal).
    expect(m1).toContainEqual(expect.objectContaining({ op: 'config.addLearner', target: 'm4', principal: { node: 'm4', role: 'manager' }, requestId: 'req-add' }));
    for (const id of ['m1', 'm2', 'm3']) expect(readFileSync(join(root, id, 'audit.log'), 'utf8')).not.toContain('hunter2');
  });

  it('does not write again what a restarted manager replays from its log', async () => {
    const leader = await cluster.leader();
    const restarted = [...cluster.running.keys()].find((id) => id !== leader.id)!;
    const before = await committedLines(restarted);
    await cluster.stop(restarted);
    await logs.get(restarted)!.close();
    await openAudit(restarted);
    await cluster.start(restarted);
    await cluster.putOne('after-restart', 'v');
    await cluster.converged();

    const after = await committedLines(restarted);
    const indexes = after.map((l) => l.index);
    expect(new Set(indexes).size).toBe(indexes.length);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.filter((l) => l.target === 'after-restart')).toHaveLength(1);
    expect(after.map((l) => l.seq)).toEqual(after.map((_, i) => i + 1));
  });
});

describe("membership changes and leadership transfers through the managers' API (HTTPS; a follower forwards to the leader)", () => {
  const host = '127.0.41.1';
  const ids = ['m1', 'm2', 'm3'];
  const apiRoot = mkdtempSync(join(tmpdir(), 'minkube-audit-api-'));
  const apiLogs = new Map<string, AuditLog>();
  const tokens = new Map<string, TokenRecord>();
  const apps = new Map<string, FastifyInstance>();
  const pools: HttpClient[] = [];
  const admin = newApiToken();
  tokens.set(admin.accessor, { role: 'admin', secretHash: admin.secretHash });
  const adminPrincipal = { token: admin.accessor, role: 'admin' };
  let apiCluster: DriverCluster;

  beforeAll(async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const ports = new Map<string, number>();
    const certs = new Map<string, { keyPem: string; certPem: string }>();
    for (const id of ids) {
      ports.set(id, await freePortIn(host, 41000, 41999));
      certs.set(id, await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role: 'manager', clusterId: 'c1', sans: { ips: [host], dns: [] } }));
      await openAudit(id, apiRoot, apiLogs);
    }
    apiCluster = new DriverCluster({
      seed: 2,
      apiAddressOf: (id) => `${host}:${ports.get(id)!}`,
      // A manager forwards to the leader with its own certificate, as daemon/manager.ts wires it.
      membershipHttp: (id) => {
        const { certPem, keyPem } = certs.get(id)!;
        const pool = new HttpClient({ tls: { ca: ca.certPem, cert: certPem, key: keyPem } });
        pools.push(pool);
        return pool;
      },
      listeners: (id) => {
        const log = apiLogs.get(id)!;
        return { onApplied: (index, applied) => log.committed(index, applied), onEntryApplied: (entry) => log.entryApplied(entry) };
      },
    });
    await apiCluster.startAll();
    for (const node of apiCluster.running.values()) {
      const { certPem, keyPem } = certs.get(node.id)!;
      const app = buildManagerApp({
        service: node.service, membership: node.membership, audit: apiLogs.get(node.id)!,
        security: { resolveToken: (a) => tokens.get(a) ?? null },
        https: { key: keyPem, cert: certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false },
      });
      await app.listen({ host, port: ports.get(node.id)! });
      apps.set(node.id, app);
    }
  }, 30_000);

  afterAll(async () => {
    for (const app of apps.values()) await app.close();
    for (const pool of pools) await pool.close();
    await apiCluster?.close();
    for (const log of apiLogs.values()) await log.close();
    rmSync(apiRoot, { recursive: true, force: true });
  });

  /** As the admin, through app.inject (the client's side needs no TLS: the token is what names it). */
  const asAdmin = (id: string, method: 'POST' | 'DELETE', url: string, requestId: string, payload?: object) =>
    apps.get(id)!.inject({ method, url, headers: { authorization: `Bearer ${admin.token}`, 'x-request-id': requestId }, ...(payload === undefined ? {} : { payload }) });

  it("records a member added through a follower and removed through the leader with the admin token's principal and the request id, on every manager", async () => {
    const leader = await apiCluster.leader();
    const follower = [...apiCluster.running.values()].find((n) => n.id !== leader.id)!;
    const added = await asAdmin(follower.id, 'POST', '/v1/cluster/members', 'req-add-m5', { id: 'm5', raftAddress: 'm5.raft.test:7000', apiAddress: 'm5.api.test:8000' });
    expect(added.statusCode, added.body).toBe(201);
    const removed = await asAdmin(leader.id, 'DELETE', '/v1/cluster/members/m5', 'req-remove-m5');
    expect(removed.statusCode, removed.body).toBe(200);
    await apiCluster.converged();

    const [first, ...others] = await Promise.all(ids.map((id) => committedLines(id, apiRoot, apiLogs)));
    for (const lines of [first!, ...others]) {
      expect(lines).toContainEqual(expect.objectContaining({ op: 'config.addLearner', target: 'm5', principal: adminPrincipal, outcome: 'ok', requestId: 'req-add-m5' }));
      expect(lines).toContainEqual(expect.objectContaining({ op: 'config.remove', target: 'm5', principal: adminPrincipal, outcome: 'ok', requestId: 'req-remove-m5' }));
      expect(lines.map(shared)).toEqual(first!.map(shared));
    }
  });

  it('records a leadership transfer asked of a follower on that follower and on the leader it forwarded to, and a failed one where it failed', async () => {
    const leader = await apiCluster.leader();
    const follower = [...apiCluster.running.values()].find((n) => n.id !== leader.id)!;
    const bystander = ids.find((id) => id !== leader.id && id !== follower.id)!;
    const moved = await asAdmin(follower.id, 'POST', '/v1/cluster/leader', 'req-transfer', { id: follower.id });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ leaderId: follower.id });
    const unknown = await asAdmin(follower.id, 'POST', '/v1/cluster/leader', 'req-transfer-m9', { id: 'm9' });
    expect(unknown.statusCode, unknown.body).toBe(404);

    const served = async (id: string) => (await auditLines(id, apiRoot, apiLogs)).filter((l): l is AuditServedLine => 'target' in l && 'route' in l).map(({ seq: _s, time: _t, ...rest }) => rest);
    const transfer = { principal: adminPrincipal, route: 'POST /v1/cluster/leader', target: follower.id, outcome: 'ok', requestId: 'req-transfer' };
    expect(await served(follower.id)).toEqual([transfer, { ...transfer, target: 'm9', outcome: 'MEMBER_NOT_FOUND', requestId: 'req-transfer-m9' }]);
    // The leader names the admin, not the follower whose certificate it heard the request with.
    expect(await served(leader.id)).toEqual([transfer]);
    expect(await served(bystander)).toEqual([]);
  });
});
