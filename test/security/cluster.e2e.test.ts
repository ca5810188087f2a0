// A closed cluster end to end, with real processes: every route refuses a caller without a token, with a bad or
// revoked one, or with a role that lacks the permission; nodes are known by their certificates (a forged worker or
// a worker's certificate on a worker's API is refused); nodes join with a join token, and not with a wrong or
// expired one.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { encodeFrame, WIRE_VERSION } from '../../src/transport/codec.js';
import { runCli } from '../support/cli.js';
import { eventually, freePort, httpJson, ProcCluster, repoRoot } from '../support/cluster.js';
import { sleep } from '../support/wait.js';

let c: ProcCluster;
let leader: string;
let credentialsPath: string;

/** The CLI as a user with this cluster's credentials file would run it. */
function mk(args: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> {
  return runCli(args, { MINKUBE_CONFIG: credentialsPath, ...env });
}

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 1, workerRuntime: 'process', secure: true });
  c.startAll();
  leader = await c.waitForLeader({ timeoutMs: 60_000 });
  // Managers started node by node (not with `minkube up`) leave the credentials beside the config.
  credentialsPath = join(c.dir, '.minkube', 'credentials.json');
  const written = JSON.parse(readFileSync(credentialsPath, 'utf8')) as { apis: string[]; token: string; ca: string };
  expect(written).toMatchObject({ apis: c.managerIds.map((id) => c.url(id)), token: c.adminToken(), ca: c.caCertPem() });
  await eventually(async () => ((await c.http('w1', 'GET', '/health')).status === 200 ? true : undefined), 30_000, 'the worker');
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
});

const asAnonymous = { token: null };

describe('a closed cluster (real processes, TLS and tokens on)', () => {
  it('serves /health and /ready to anyone, and nothing else without a token', async () => {
    for (const id of c.managerIds) {
      expect((await c.http(id, 'GET', '/health', undefined, 5000, asAnonymous)).status).toBe(200);
      const routes: [string, string, unknown?][] = [
        ['GET', '/v1/cluster'], ['GET', '/v1/kv/a'], ['PUT', '/v1/kv/a', { value: 'x' }], ['DELETE', '/v1/kv/a'],
        ['POST', '/v1/tasks', { image: 'x' }], ['GET', '/v1/tasks'], ['GET', '/v1/workers'], ['GET', '/v1/cluster/members'],
        ['POST', '/v1/cluster/members', { id: 'm9', raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }], ['DELETE', '/v1/cluster/members/m2'],
        ['POST', '/v1/cluster/leader', {}], ['GET', '/v1/auth/tokens'], ['POST', '/v1/auth/tokens', { role: 'admin' }],
      ];
      for (const [method, path, body] of routes) {
        const r = await c.http(id, method, path, body, 5000, asAnonymous);
        expect([r.status, r.body?.error?.code], `${method} ${path} on ${id}`).toEqual([401, 'UNAUTHENTICATED']);
        const bad = await c.http(id, method, path, body, 5000, { token: 'mk_0123456789abcdef_not-the-secret' });
        expect([bad.status, bad.body?.error?.code], `${method} ${path} with a bad token`).toEqual([401, 'UNAUTHENTICATED']);
      }
    }
  });

  it('checks the role: a viewer reads and may not write (403 naming the permission); the admin may', async () => {
    const created = await c.http(leader, 'POST', '/v1/auth/tokens', { name: 'viewer-1', role: 'viewer' });
    expect(created.status).toBe(201);
    const viewer = { token: created.body.token as string };
    expect((await c.http(leader, 'PUT', '/v1/kv/greeting', { value: 'hi' })).status).toBe(200);
    for (const id of c.managerIds) {
      await eventually(async () => ((await c.http(id, 'GET', '/v1/kv/greeting', undefined, 5000, viewer)).status === 200 ? true : undefined), 5000, `the viewer token on ${id}`);
      const put = await c.http(id, 'PUT', '/v1/kv/greeting', { value: 'no' }, 5000, viewer);
      expect(put.status).toBe(403);
      expect(put.body.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('kv:write') as string });
      const task = await c.http(id, 'POST', '/v1/tasks', { image: 'x' }, 5000, viewer);
      expect(task.body.error.message).toContain('tasks:write');
    }
  });

  it('a token made through one manager is good at once on every other (one that has not applied it yet catches up first)', async () => {
    for (let i = 0; i < 5; i++) {
      const created = await c.http(leader, 'POST', '/v1/auth/tokens', { name: `fresh-${i}`, role: 'viewer' });
      expect(created.status).toBe(201);
      const answers = await Promise.all(c.managerIds.filter((id) => id !== leader).map((id) => c.http(id, 'GET', '/v1/cluster', undefined, 5000, { token: created.body.token as string })));
      for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(200);
      const fresh = await c.http(leader, 'POST', '/v1/auth/tokens', { name: `fresh-login-${i}`, role: 'viewer' });
      const follower = c.managerIds.find((id) => id !== leader)!;
      const login = await c.http(follower, 'POST', '/v1/auth/login', { token: fresh.body.token as string }, 5000, { token: null });
      expect(login.status, JSON.stringify(login.body)).toBe(200);
    }
    // A token nobody made is still refused, after the same catching up.
    const unknown = await c.http(leader, 'GET', '/v1/cluster', undefined, 5000, { token: `mk_${'a'.repeat(16)}_${'b'.repeat(43)}` });
    expect(unknown.status, JSON.stringify(unknown.body)).toBe(401);
  });

  it('a revoked token is refused on every manager as soon as it has applied the revoke', async () => {
    const created = await c.http(leader, 'POST', '/v1/auth/tokens', { name: 'short-lived', role: 'operator' });
    const token = { token: created.body.token as string };
    for (const id of c.managerIds) {
      await eventually(async () => ((await c.http(id, 'GET', '/v1/tasks', undefined, 5000, token)).status === 200 ? true : undefined), 5000, `the token on ${id}`);
    }
    const revoked = await c.http(c.managerIds.find((id) => id !== leader)!, 'DELETE', `/v1/auth/tokens/${created.body.accessor as string}`);
    expect(revoked.status).toBe(200);
    // The revoke was committed before it answered: every commit index seen now reaches it.
    const views = await Promise.all(c.managerIds.map((id) => c.http(id, 'GET', '/v1/cluster')));
    const revokeIndex = Math.max(...views.map((v) => v.body.commitIndex as number));
    for (const id of c.managerIds) {
      await eventually(async () => ((await c.http(id, 'GET', '/v1/cluster', undefined, 1000)).body.appliedIndex >= revokeIndex ? true : undefined), 30_000, `${id} to apply up to ${revokeIndex}`);
      // Applied: refused on the very next request, with no cache to outlive the revoke.
      expect((await c.http(id, 'GET', '/v1/tasks', undefined, 5000, token)).status, id).toBe(401);
    }
  });

  it('knows nodes by their certificates: no forged worker, no worker speaking for another, no stranger on a worker', async () => {
    const w1 = c.node('w1');
    const tlsDir = join(c.dir, 'w1', 'tls');
    const workerCert = { cert: readFileSync(join(tlsDir, 'node.crt'), 'utf8'), key: readFileSync(join(tlsDir, 'node.key'), 'utf8') };
    const fake = { id: 'w2', apiAddress: '127.0.0.1:1', runtime: 'process' };
    // Registration and heartbeats need a worker certificate, and a worker speaks only for itself.
    expect((await c.http(leader, 'POST', '/v1/workers', fake)).status).toBe(401);
    expect((await c.http(leader, 'POST', '/v1/workers', fake, 5000, { token: null, ...workerCert })).status).toBe(403);
    // Without an id, the body is what is wrong.
    const noId = await c.http(leader, 'POST', '/v1/workers', {}, 5000, { token: null, ...workerCert });
    expect(noId).toMatchObject({ status: 400, body: { error: { code: 'INVALID_BODY', message: expect.stringMatching(/^body\.id/) } } });
    const beat = await c.http(leader, 'POST', '/v1/workers/w2/heartbeat', { tasks: [] }, 5000, { token: null, ...workerCert });
    expect(beat.status).toBe(403);
    // A worker's API serves managers only.
    const anonymous = await httpJson(w1.apiUrl, 'POST', '/v1/tasks', { taskId: 't', attempt: 1, term: 9, spec: { image: 'x' }, desiredState: 'run' }, 5000, { tls: { ca: c.caCertPem() } });
    expect(anonymous.status).toBe(401);
    const asWorker = await httpJson(w1.apiUrl, 'GET', '/v1/tasks', undefined, 5000, { tls: { ca: c.caCertPem(), ...workerCert } });
    expect(asWorker.status).toBe(403);
    const workers = await c.http(leader, 'GET', '/v1/workers');
    expect((workers.body as { items: { id: string }[] }).items.map((w) => w.id)).toEqual(['w1']);
  });

  it('refuses Raft peers without a manager certificate of this cluster naming their id: term and leader unchanged', async () => {
    const before = (await c.http(leader, 'GET', '/v1/cluster')).body as { term: number; leaderId: string };
    const target = c.managerIds.find((id) => id !== leader)!;
    const raftAddress = (c.config.managers as { id: string; raftAddress: string }[]).find((m) => m.id === target)!.raftAddress;
    const [host, port] = [raftAddress.split(':')[0]!, Number(raftAddress.split(':')[1])];
    const tlsDir = (id: string): string => join(c.dir, id, 'tls');
    const pem = (id: string, f: string): string => readFileSync(join(tlsDir(id), f), 'utf8');
    // The lowest id dials, so a hello "from m1" is what m2 and m3 would believe from a peer.
    const claimed = nodeId('m1');
    const attempts: (() => Socket)[] = [
      () => netConnect({ host, port }),
      () => tlsConnect({ host, port, ca: c.caCertPem(), cert: pem('w1', 'node.crt'), key: pem('w1', 'node.key'), checkServerIdentity: () => undefined }),
      () => tlsConnect({ host, port, ca: c.caCertPem(), cert: pem(target === 'm2' ? 'm3' : 'm2', 'node.crt'), key: pem(target === 'm2' ? 'm3' : 'm2', 'node.key'), checkServerIdentity: () => undefined }),
    ];
    for (const open of attempts) {
      await new Promise<void>((done) => {
        const socket = open();
        const event = socket instanceof TLSSocket ? 'secureConnect' : 'connect';
        socket.once(event, () => {
          socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: claimed, to: nodeId(target) }));
          socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: [{ type: 'heartbeat', from: claimed, to: nodeId(target), term: term(Number.MAX_SAFE_INTEGER), commit: logIndex(0), context: '' }] }));
        });
        socket.on('error', () => {});
        socket.once('close', () => done());
        setTimeout(() => socket.destroy(), 3000).unref();
      });
    }
    const after = (await c.http(target, 'GET', '/v1/cluster')).body as { term: number; leaderId: string };
    expect(after.term).toBe(before.term);
    expect(after.leaderId).toBe(before.leaderId);
  });

  it('audits: every manager records a committed change with its principal; the refusing manager records a refusal', async () => {
    const admin = c.adminToken().split('_')[1]!;
    const put = await c.http(leader, 'PUT', '/v1/kv/audited', { value: 'secret-value' });
    expect(put.status).toBe(200);
    const refusedOn = c.managerIds.find((id) => id !== leader)!;
    expect((await c.http(refusedOn, 'GET', '/v1/kv/audited', undefined, 5000, { token: null })).status).toBe(401);
    for (const id of c.managerIds) {
      const line = await eventually(async () => {
        const page = await c.http(id, 'GET', '/v1/audit?limit=1000');
        const items = (page.body as { items?: { op?: string; target?: string; principal?: unknown; outcome?: string }[] }).items ?? [];
        return items.find((l) => l.op === 'put' && l.target === 'audited');
      }, 5000, `the put in ${id}'s audit log`);
      expect(line).toMatchObject({ principal: { token: admin, role: 'admin' }, outcome: 'ok' });
      expect(readFileSync(join(c.dir, id, 'audit.log'), 'utf8')).not.toContain('secret-value');
    }
    const refusals = await c.http(refusedOn, 'GET', '/v1/audit?limit=1000');
    expect((refusals.body as { items: { route?: string; outcome?: string }[] }).items).toContainEqual(expect.objectContaining({ route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED' }));
  });

  it('joins a manager with a join token into the slot member add made: it becomes a voter and serves reads', async () => {
    const token = (await mk(['token', 'create', '--role', 'manager', '--ttl', '10m'])).stdout.trim();
    const self = await c.addManagerNode('m4', 4);
    // The operator adds it first (a learner at these addresses); the join then fills that slot (it was refused as
    // "already a member" before).
    const added = await mk(['member', 'add', 'm4', '--raft-address', self.raftAddress, '--api-address', self.apiAddress]);
    expect(added.code, added.stderr).toBe(0);
    c.start('m4', ['--join', c.url(leader), '--token', token, '--raft-address', self.raftAddress, '--api-address', self.apiAddress, '--data-dir', self.dataDir], { withConfig: false });
    await eventually(async () => {
      const members = await c.http(leader, 'GET', '/v1/cluster/members');
      const m4 = (members.body as { members?: { id: string; voter: boolean }[] }).members?.find((m) => m.id === 'm4');
      return m4?.voter === true ? true : undefined;
    }, 60_000, 'm4 to become a voter');
    const read = await mk(['--api', c.url('m4'), 'kv', 'get', 'greeting']);
    expect(read.stdout).toBe('hi');
    // Restarted from its flags alone, it keeps the certificate the cluster issued: no CA is made where it runs.
    await c.signal('m4', 'SIGTERM');
    c.start('m4', ['--raft-address', self.raftAddress, '--api-address', self.apiAddress, '--data-dir', self.dataDir], { withConfig: false });
    const again = await eventually(async () => {
      const r = await mk(['--api', c.url('m4'), 'kv', 'get', 'greeting']);
      return r.code === 0 ? r : undefined;
    }, 30_000, 'm4 to serve reads after its restart');
    expect(again.stdout).toBe('hi');
    expect(existsSync(join(repoRoot, '.minkube'))).toBe(false);
    // It still knows where the config's members are (no config entry names them): kept when it joined.
    const view = await c.http('m4', 'GET', '/v1/cluster');
    const members = (view.body as { members: { id: string; apiAddress: string }[] }).members;
    for (const id of ['m1', 'm2', 'm3']) expect(members.find((m) => m.id === id)?.apiAddress, id).toBe(new URL(c.url(id)).host);
  });

  it('runs a task end to end over mutual TLS (leader -> worker, worker -> managers)', async () => {
    const r = await mk(['task', 'run', 'minkube-busybox:latest', '--wait', '--', 'echo', 'closed']);
    expect(r.stdout + r.stderr).toMatch(/succeeded; exit code 0/);
  });

  it('joins a worker with a join token; refuses a wrong CA digest and an expired token', async () => {
    const token = (await mk(['token', 'create', '--role', 'worker', '--ttl', '10m'])).stdout.trim();
    expect(token).toMatch(/^MKTKN-1-[0-9a-f]{64}-/);
    const port = await freePort();
    const dataDir = join(c.dir, 'w-joined');
    const wrongDigest = token.replace(/^MKTKN-1-[0-9a-f]{64}/, `MKTKN-1-${'0'.repeat(64)}`);
    const refused = await runCli(['worker', '--id', 'wj', '--join', c.url(leader), '--token', wrongDigest, '--api-address', `127.0.0.1:${port}`, '--data-dir', dataDir]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/digest/);
    const short = JSON.parse((await mk(['--json', 'token', 'create', '--role', 'worker', '--ttl', '1s'])).stdout) as { token: string; accessor: string; expiresAt: string };
    // Until the leader lists the token and its expiry has passed (on this machine's clock, which the leader reads too):
    // the refusal below is then for its expiry, not for a token the cluster never had.
    await eventually(async () => {
      const list = await c.http(leader, 'GET', '/v1/auth/tokens');
      const listed = (list.body as { joinTokens?: { accessor: string; expiresAt: string }[] }).joinTokens?.find((j) => j.accessor === short.accessor);
      return listed !== undefined && Date.now() >= Date.parse(listed.expiresAt) ? true : undefined;
    }, 10_000, 'the short-lived join token to be listed and past its expiry');
    const late = await runCli(['worker', '--id', 'wj', '--join', c.url(leader), '--token', short.token, '--api-address', `127.0.0.1:${port}`, '--data-dir', dataDir]);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/UNAUTHENTICATED: unknown, revoked or expired join token/);
    // The right token: the worker joins and registers, with the id its certificate names.
    c.nodes.set('wj', { id: 'wj', kind: 'worker', apiUrl: `https://127.0.0.1:${port}`, host: '127.0.0.1', proc: null, log: null });
    c.start('wj', ['--join', c.url(leader), '--token', token, '--api-address', `127.0.0.1:${port}`, '--data-dir', dataDir, '--runtime', 'process'], { withConfig: false });
    await eventually(async () => {
      const ws = await c.http(leader, 'GET', '/v1/workers');
      const items = (ws.body as { items?: { id: string; state: string }[] }).items ?? [];
      return items.some((w) => w.id === 'wj' && w.state === 'ready') ? true : undefined;
    }, 30_000, 'the joined worker to be ready');
  });

  it("refuses a removed manager's certificate on the Raft port and the API: one heartbeat cannot raise the term", async () => {
    // m4 joined above with a join token; removed and stopped, its certificate is still the CA's and unexpired.
    const removed = await mk(['member', 'remove', 'm4']);
    expect(removed.code, removed.stderr).toBe(0);
    await c.signal('m4', 'SIGKILL');
    const m4Tls = { ca: c.caCertPem(), cert: readFileSync(join(c.dir, 'm4', 'tls', 'node.crt'), 'utf8'), key: readFileSync(join(c.dir, 'm4', 'tls', 'node.key'), 'utf8') };
    const before = (await c.http(leader, 'GET', '/v1/cluster')).body as { term: number; leaderId: string };
    // The API: a manager's certificate reached every route; a removed one's reaches none, on any manager.
    for (const id of ['m1', 'm2', 'm3']) {
      const r = await eventually(async () => {
        const got = await httpJson(c.url(id), 'GET', '/v1/cluster', undefined, 5000, { tls: m4Tls });
        return got.status === 401 ? got : undefined;
      }, 10_000, `${id} to refuse m4's certificate`);
      expect((r.body as { error: { code: string; message: string } }).error).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('was removed from the cluster') as string });
    }
    // The Raft port: m4 (the largest id) knocks at m2 with an address of ours; m2 dials it and, before, took the
    // heartbeat sent down that connection as its leader's (term 2^53 - 1: no election could ever follow).
    const target = 'm2';
    const raftAddress = (c.config.managers as { id: string; raftAddress: string }[]).find((m) => m.id === target)!.raftAddress;
    const [host, port] = [raftAddress.split(':')[0]!, Number(raftAddress.split(':')[1])];
    const fakePort = await freePort('127.0.0.4');
    let dialed = 0;
    const fake = createTlsServer({ ...m4Tls, requestCert: true, rejectUnauthorized: false }, (socket) => {
      dialed++;
      socket.on('error', () => {});
      socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: [{ type: 'heartbeat', from: nodeId('m4'), to: nodeId(target), term: term(Number.MAX_SAFE_INTEGER), commit: logIndex(0), context: '' }] }));
    });
    await new Promise<void>((done) => fake.listen(fakePort, '127.0.0.4', done));
    try {
      await new Promise<void>((done) => {
        const knock = tlsConnect({ host, port, ...m4Tls, checkServerIdentity: () => undefined });
        knock.once('secureConnect', () => knock.end(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: nodeId('m4'), to: nodeId(target), addr: `127.0.0.4:${fakePort}`, knock: true })));
        knock.on('error', () => {});
        knock.once('close', () => done());
        setTimeout(() => knock.destroy(), 3000).unref();
      });
      // The knock is closed once m2 has judged its hello; a dial back follows at once when it is taken (it was).
      await sleep(2000);
    } finally {
      fake.close();
    }
    expect(dialed).toBe(0);
    // Closed right after the TLS handshake, before its hello (or anything else it sent) was read.
    expect(readFileSync(join(c.dir, `${target}.log`), 'utf8')).toMatch(/"reason":"its certificate was issued before m4 was removed from the cluster[^\n]*"msg":"refused a peer connection: its certificate is not a manager's this node takes"/);
    for (const id of ['m1', 'm2', 'm3']) {
      const after = (await c.http(id, 'GET', '/v1/cluster')).body as { term: number; leaderId: string };
      expect(after.term, id).toBe(before.term);
      expect(after.leaderId, id).toBe(before.leaderId);
    }
    expect((await c.http(leader, 'PUT', '/v1/kv/after-removal', { value: 'ok' })).status).toBe(200);
  });
});
