// A worker removed with `worker rm` (DELETE /v1/workers/:id) is cut off at once, as a removed manager is: every route
// that takes a worker's certificate (register, heartbeat, assignments, certificate renewal) refuses one of that id
// issued at or before the removal, 401 UNAUTHENTICATED saying how to come back, while one issued after (a restart
// with an emptied tls directory, a join) is taken, so the id can come back. Over HTTPS, through the real manager app,
// auth plugin, task service, join service and state machine, with the daemon's managerAppSecurity.
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import type { AuthService } from '../../src/contracts/services.js';
import { managerAppSecurity } from '../../src/daemon/manager-security.js';
import { nodeSecurityFrom } from '../../src/daemon/security.js';
import { systemClock, type Clock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { createClusterCa, createCsr, generateNodeKey, issueNodeKeyAndCert } from '../../src/security/ca.js';
import type { NodeTls } from '../../src/security/pki-files.js';
import { inProcessRaft } from '../support/in-process.js';

const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };
const stats = { cpuUtilization: 0.1, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 0 };
/** The managers' clock runs a minute behind, so that certificates issued "before" and "after" it are valid now. */
const behindMs = 60_000;
const managerClock: Clock = { ...systemClock, nowMs: () => systemClock.nowMs() - behindMs };

type Cert = { keyPem: string; certPem: string };
type Reply = { status: number; body: { error?: { code: string; message: string; details?: unknown } } & Record<string, unknown> };

let app: FastifyInstance;
let port: number;
let ca: { certPem: string; keyPem: string };
let removedAtMs: number;
let before: Cert;
let after: Cert;

const issue = (id: string, role: 'manager' | 'worker', now: Date): Promise<Cert> =>
  issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId: 'c1', sans, now });

function call(client: Cert, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest({
      host: '127.0.0.1', port, method, path, ca: ca.certPem, key: client.keyPem, cert: client.certPem, agent: false,
      headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
    }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as Reply['body'] }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Every route a worker's certificate reaches, as worker w1 calls them. */
async function workerRoutes(client: Cert): Promise<[string, Reply][]> {
  const csr = await createCsr({ keyPem: (await generateNodeKey()).keyPem, id: 'w1', role: 'worker', clusterId: 'c1' });
  return [
    ['register', await call(client, 'POST', '/v1/workers', { id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' })],
    ['heartbeat', await call(client, 'POST', '/v1/workers/w1/heartbeat', { stats, tasks: [] })],
    ['assignments', await call(client, 'GET', '/v1/workers/w1/assignments')],
    ['renew', await call(client, 'POST', '/v1/certs/renew', { csr })],
  ];
}

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
  const now = Date.now();
  const m1 = await issue('m1', 'manager', new Date(now - 300_000));
  const material: NodeTls = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...m1, identity: { id: 'm1', role: 'manager', clusterId: 'c1' } };
  const { kv, raft, apply } = inProcessRaft();
  const tasks = new TaskServiceImpl({
    store: kv.tasks, raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: managerClock, random: new SeededRandom(1), logger: pino({ level: 'silent' }),
  });
  const join = new JoinServiceImpl({ material, clock: systemClock, joinToken: () => undefined, managers: () => [], worker: () => undefined });
  const auth = { lookupToken: () => undefined, sessionKey: () => null } as unknown as AuthService;
  const security = managerAppSecurity(
    nodeSecurityFrom(material), auth,
    { managerRefusal: () => null, workerRemovedAtMs: (id) => kv.tasks.workerRemovedAtMs(id) },
    async () => undefined, () => false,
  );
  // A snapshot chunk's route, which only managers call: it is never reached here (a worker's certificate is refused first).
  const raftPeer = { receiveSnapshotChunk: () => { throw new Error('not reached'); } };
  app = buildManagerApp({ service: { ready: () => ({ ready: true }) } as never, tasks, join, security, raftPeer, https: nodeSecurityFrom(material).serverTls() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;

  // w1 registered with a certificate issued two minutes ago, then went down and was removed (a minute ago, by the
  // managers' clock); its next certificate is issued half a minute ago.
  before = await issue('w1', 'worker', new Date(now - 120_000));
  after = await issue('w1', 'worker', new Date(now - 30_000));
  expect((await call(before, 'POST', '/v1/workers', { id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' })).status).toBe(200);
  const heartbeats = kv.tasks.allWorkers()[0]!.heartbeats;
  apply({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: now - 90_000, ifHeartbeats: heartbeats, lost: [] });
  apply({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: now - 80_000, ifHeartbeats: heartbeats, lost: [] });
  await tasks.removeWorker('w1', { deadlineMs: performance.now() + 10_000, requestId: 'r' } as Parameters<TaskServiceImpl['removeWorker']>[1]);
  removedAtMs = kv.tasks.workerRemovedAtMs('w1')!;
  expect(Math.abs(removedAtMs - (now - behindMs))).toBeLessThan(10_000);
});
afterAll(async () => {
  await app?.close();

});

describe('a removed worker', () => {
  it('is refused on every worker route with a certificate issued before its removal: 401 saying when, and how to come back', async () => {
    const at = new Date(removedAtMs).toISOString();
    for (const [route, reply] of await workerRoutes(before)) {
      expect(reply.status, route).toBe(401);
      expect(reply.body.error, route).toEqual({
        code: 'UNAUTHENTICATED',
        message: `worker w1: its certificate was issued before worker w1 was removed from the cluster (${at}): a removed worker comes back only with a new certificate: ` +
          'empty its <dataDir>/tls and start it again (a worker the cluster config lists gets a new certificate from the CA beside the config at start; ' +
          'one that joined with a token joins again: minkube worker --id w1 --join URL --token T ..., a token from minkube token create --role worker)',
        details: { removed: true },
      });
    }
  });

  it('comes back with a certificate issued after its removal: registered again, its heartbeats, assignments and renewal taken', async () => {
    const replies = await workerRoutes(after);
    for (const [route, reply] of replies) expect([route, reply.status, reply.body.error]).toEqual([route, 200, undefined]);
    expect(replies[0]![1].body).toMatchObject({ worker: { id: 'w1', state: 'ready' } });
    expect(replies[3]![1].body).toMatchObject({ certificate: expect.stringContaining('BEGIN CERTIFICATE') as string });
    // The old certificate stays refused once the id is back.
    expect((await call(before, 'POST', '/v1/workers/w1/heartbeat', { stats, tasks: [] })).status).toBe(401);
  });

  it('another worker, and a manager, are not refused for w1\'s removal', async () => {
    const w2 = await issue('w2', 'worker', new Date(Date.now() - 120_000));
    expect((await call(w2, 'POST', '/v1/workers', { id: 'w2', apiAddress: '127.0.0.1:9002', runtime: 'process' })).status).toBe(200);
    // A worker's certificate that names w1 and a manager's that names w1 are different identities: only workers are judged by worker removals.
    const m = await issue('w1', 'manager', new Date(Date.now() - 120_000));
    const reply = await call(m, 'POST', '/v1/workers/w1/heartbeat', { stats, tasks: [] });
    expect(reply.body.error?.message ?? '').not.toContain('was removed');
  });
});

describe("a worker's certificate on a manager's route", () => {
  it('is refused before the body is read: a snapshot chunk announced at 1 MB and never sent is answered 403 at once', async () => {
    const w3 = await issue('w3', 'worker', new Date(Date.now() - 120_000));
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1', port, method: 'POST', path: '/internal/v1/raft/snapshot', ca: ca.certPem, key: w3.keyPem, cert: w3.certPem, agent: false,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(1_000_000) },
      }, (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as Reply['body'] }));
      });
      req.on('error', reject);
      // Headers only: a manager that waited for the body would answer nothing until its request timeout.
      req.flushHeaders();
    });
    expect(reply).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: "a worker's certificate does not reach this route" } } });
  }, 5_000);
});

describe('an insecure cluster (no certificates)', () => {
  it('takes a removed worker back as before: it registers again, as a new one', async () => {
    const inProcess = inProcessRaft();
    const tasks = new TaskServiceImpl({
      store: inProcess.kv.tasks, raft: inProcess.raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock, random: new SeededRandom(1), logger: pino({ level: 'silent' }),
    });
    const plain = buildManagerApp({ service: { ready: () => ({ ready: true }) } as never, tasks, insecure: true });
    try {
      const register = () => plain.inject({ method: 'POST', url: '/v1/workers', payload: { id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' } });
      expect((await register()).statusCode).toBe(200);
      const heartbeats = inProcess.kv.tasks.allWorkers()[0]!.heartbeats;
      inProcess.apply({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: Date.now(), ifHeartbeats: heartbeats, lost: [] });
      inProcess.apply({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: Date.now(), ifHeartbeats: heartbeats, lost: [] });
      expect((await plain.inject({ method: 'DELETE', url: '/v1/workers/w1' })).json()).toEqual({ id: 'w1', removed: true });
      expect((await register()).json()).toMatchObject({ worker: { id: 'w1', state: 'ready' } });
      expect((await plain.inject({ method: 'POST', url: '/v1/workers/w1/heartbeat', payload: { stats, tasks: [] } })).statusCode).toBe(200);
    } finally {
      await plain.close();
    }
  });
});
