// The dashboard's server side without a browser: the feed (snapshots on a change and every second, rates, batched
// task changes with a bound), GET /v1/events over a real socket (auth, the stream format, the bound on streams,
// app.close() with streams open), the static files under /ui, and CORS for the members' own origins only.
import { pino } from 'pino';
import type { AddressInfo } from 'node:net';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { buildBaseApp } from '../../src/api/http.js';
import { eventRoutes } from '../../src/api/routes/events.js';
import type { TokenRecord } from '../../src/api/auth.js';
import type { ClusterView, DashboardEvent, DashboardSnapshot, EventsService } from '../../src/contracts/services.js';
import type { TaskRecord, TaskState } from '../../src/contracts/task-model.js';
import { DashboardFeed, type PeerSelfView } from '../../src/manager/events.js';
import { limits } from '../../src/lib/limits.js';
import { newApiToken } from '../../src/security/tokens.js';
import { defaultView, FakeManagerService } from '../api/fake-service.js';
import { ManualClock } from '../support/manual-clock.js';
import { head } from '../support/head.js';
import { freePortIn, waitFor } from '../support/wait.js';
import { connect as http2Connect } from 'node:http2';

const silent = pino({ level: 'silent' });

function task(id: string, state: TaskState, name?: string): TaskRecord {
  return {
    id,
    spec: { image: 'x', ...(name === undefined ? {} : { name }) },
    state,
    desiredState: 'run',
    workerId: state === 'pending' ? null : 'w1',
    attempt: 1,
    term: 1,
    containerId: null,
    exitCode: null,
    error: null,
    notBeforeMs: 0,
    createdAt: '2030-01-01T00:00:00.000Z',
    updatedAt: '2030-01-01T00:00:00.000Z',
    history: [],
  } as TaskRecord;
}

function feedFor(view: { current: ClusterView }, peers: Map<string, PeerSelfView | null> = new Map()): { feed: DashboardFeed; clock: ManualClock } {
  const clock = new ManualClock(1_000_000);
  const feed = new DashboardFeed({
    cluster: () => view.current,
    tasks: { countIn: (s) => (s === 'running' ? 2 : 0), listWorkers: () => ({ items: [] }) },
    peerView: async (api) => peers.get(api) ?? null,
    clock,
    logger: silent,
  });
  feed.start();
  return { feed, clock };
}

describe('the dashboard feed', () => {
  it('starts each stream with a snapshot and the rate history, then a snapshot every second and task changes in batches', async () => {
    const view = { current: defaultView({ appliedIndex: 100 }) };
    const { feed, clock } = feedFor(view, new Map([['127.0.0.2:8002', { role: 'follower', term: 3, commitIndex: 10, appliedIndex: 7 }]]));
    for (let i = 1; i <= 3; i++) {
      view.current = { ...view.current, appliedIndex: 100 + i * 50 };
      feed.taskChanged(task(`t${i}`, 'scheduled'), task(`t${i}`, 'pending'));
      clock.advance(limits.eventRateSampleMs);
    }
    const got: DashboardEvent[] = [];
    const sub = feed.subscribe((e) => got.push(e));
    const first = got[0] as { type: 'snapshot'; data: DashboardSnapshot };
    expect(first.type).toBe('snapshot');
    expect(first.data.history?.map((s) => [s.writesPerS, s.placementsPerS])).toEqual([[50, 1], [50, 1], [50, 1]]);
    expect(first.data).toMatchObject({ servedBy: 'm1', leaderId: 'm1', term: 3, tasks: { running: 2, pending: 0 } });
    // The member's own answer arrives for the next snapshot: its role and lag behind the leader's commit.
    await waitFor('a snapshot with m2 answering', async () => {
      clock.advance(limits.eventCheckIntervalMs);
      const last = got.filter((e) => e.type === 'snapshot').at(-1) as { data: DashboardSnapshot };
      return last.data.members.find((m) => m.id === 'm2')?.role === 'follower';
    });
    const snap = (got.filter((e) => e.type === 'snapshot').at(-1) as { data: DashboardSnapshot }).data;
    expect(snap.members.find((m) => m.id === 'm2')).toMatchObject({ answered: true, appliedIndex: 7, lag: 3 });
    expect(snap.members.find((m) => m.id === 'm1')).toMatchObject({ answered: true, role: 'leader', lag: 0 });
    expect(snap.history).toBeUndefined();
    // Changes of one task collapse to its newest; past the bound they are counted as dropped.
    got.length = 0;
    feed.taskChanged(task('a', 'running'), task('a', 'scheduled'));
    feed.taskChanged(task('a', 'succeeded'), task('a', 'running'));
    for (let i = 0; i < limits.eventTaskChangesMax + 5; i++) feed.taskChanged(task(`b${i}`, 'pending'), null);
    clock.advance(limits.eventCheckIntervalMs);
    const batch = got.find((e) => e.type === 'tasks') as Extract<DashboardEvent, { type: 'tasks' }>;
    expect(batch.data.items.length).toBe(limits.eventTaskChangesMax);
    expect(batch.data.items.find((t) => t.id === 'a')?.state).toBe('succeeded');
    expect(batch.data.dropped).toBe(6);
    sub.close();
    feed.close();
  });

  it('sends a snapshot at the next check when the leader changes, not a second later', () => {
    const view = { current: defaultView() };
    const { feed, clock } = feedFor(view);
    const got: DashboardEvent[] = [];
    feed.subscribe((e) => got.push(e));
    clock.advance(limits.eventCheckIntervalMs);
    const before = got.length;
    view.current = { ...view.current, leaderId: 'm2', role: 'follower', term: 4 };
    clock.advance(limits.eventCheckIntervalMs);
    const after = got.slice(before).filter((e) => e.type === 'snapshot') as { data: DashboardSnapshot }[];
    expect(after.map((e) => [e.data.leaderId, e.data.term])).toEqual([['m2', 4]]);
    feed.close();
  });
});

// ---- over HTTP ----

const tokens = new Map<string, TokenRecord>();
function mint(role: string): string {
  const { token, accessor, secretHash } = newApiToken();
  tokens.set(accessor, { role, secretHash });
  return token;
}

/** A feed the test drives by hand. */
class HandFeed implements EventsService {
  readonly sends = new Set<(e: DashboardEvent) => void>();
  subscribe(send: (e: DashboardEvent) => void): { close(): void } {
    this.sends.add(send);
    return { close: () => this.sends.delete(send) };
  }
  push(e: DashboardEvent): void {
    for (const s of this.sends) s(e);
  }
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

async function serve(app: FastifyInstance): Promise<string> {
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/**
 * A GET's status, its body read to the end: a body left unread holds its connection busy. With eleven left unread,
 * this file's dashboard test took 18 s instead of 0.5 under load, outside its own requests (in the close afterEach).
 */
async function statusOf(url: string): Promise<number> {
  const r = await fetch(url);
  await r.arrayBuffer();
  return r.status;
}

function secureApp(events: EventsService): FastifyInstance {
  return buildManagerApp({ service: new FakeManagerService(), events, security: { resolveToken: (a) => tokens.get(a) ?? null } });
}

/** Opens a stream; resolves with the response once the headers are in, collecting the body as it comes. */
function open(url: string, token?: string): Promise<{ res: IncomingMessage; body: () => string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      const ended = new Promise<void>((r) => res.on('close', () => r()));
      resolve({ res, body: () => body, ended });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /v1/events', () => {
  it('needs a token with cluster:read, then streams events as text/event-stream', async () => {
    const feed = new HandFeed();
    const base = await serve(secureApp(feed));
    expect(await statusOf(`${base}/v1/events`)).toBe(401);
    const viewer = await open(`${base}/v1/events`, mint('viewer'));
    expect(viewer.res.statusCode).toBe(200);
    expect(viewer.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await waitFor('the subscription', () => feed.sends.size === 1);
    feed.push({ type: 'tasks', data: { items: [], dropped: 2 } });
    await waitFor('the event on the wire', () => viewer.body().includes('event: tasks\ndata: {"items":[],"dropped":2}\n\n'));
    expect(viewer.body().startsWith('retry: 1000\n')).toBe(true);
    viewer.res.destroy();
    await waitFor('the subscription closed with the connection', () => feed.sends.size === 0);
  });

  it('is cut, within about a second, once its token is revoked or has expired; a stream of another token goes on', async () => {
    const feed = new HandFeed();
    const base = await serve(secureApp(feed));
    const revokedToken = mint('viewer');
    const expiring = newApiToken();
    tokens.set(expiring.accessor, { role: 'viewer', secretHash: expiring.secretHash, expiresAtMs: Date.now() + 1500 });
    const kept = await open(`${base}/v1/events`, mint('viewer'));
    const revoked = await open(`${base}/v1/events`, revokedToken);
    const expired = await open(`${base}/v1/events`, expiring.token);
    await waitFor('three subscriptions', () => feed.sends.size === 3);
    const [, accessor] = /^mk_([^_]+)_/.exec(revokedToken)!;
    tokens.delete(accessor!);
    const revokedAtMs = Date.now();
    await revoked.ended;
    expect(Date.now() - revokedAtMs).toBeLessThan(limits.longAnswerCredentialCheckMs * 2 + 1000);
    expect(revoked.res.complete).toBe(false); // cut, not ended: the client reconnects and meets the 401
    await expired.ended;
    expect(expired.res.complete).toBe(false);
    await waitFor('the cut streams unsubscribed', () => feed.sends.size === 1);
    feed.push({ type: 'tasks', data: { items: [], dropped: 0 } });
    await waitFor('the kept stream still served', () => kept.body().includes('event: tasks'));
    expect(await statusOf(`${base}/v1/events`)).toBe(401);
    kept.res.destroy();
  });

  it('leaves out what the token may not read: workers without workers:read, tasks without tasks:read', async () => {
    const feed = new HandFeed();
    const base = await serve(secureApp(feed));
    const developer = await open(`${base}/v1/events`, mint('developer')); // tasks and cluster, not workers
    const { token, accessor, secretHash } = newApiToken();
    tokens.set(accessor, { role: 'cluster-only', secretHash, policy: { name: 'cluster-only', rules: [{ effect: 'allow', resource: 'cluster', verbs: ['read'] }] } });
    const clusterOnly = await open(`${base}/v1/events`, token);
    await waitFor('two subscriptions', () => feed.sends.size === 2);
    const worker = { id: 'w1', apiAddress: '127.0.0.1:9001', state: 'ready', runtime: 'process', registeredAt: '', lastHeartbeatAt: null, stats: null, taskCount: 1, availability: 'active' } as const;
    const tasks = { pending: 1, scheduled: 0, running: 2, succeeded: 0, failed: 0, stopped: 0, lost: 0 };
    const snapshot: DashboardSnapshot = { atMs: 1, servedBy: 'm1', role: 'leader', term: 1, leaderId: 'm1', commitIndex: 1, appliedIndex: 1, members: [], workers: [worker], tasks, rate: null };
    feed.push({ type: 'snapshot', data: snapshot });
    feed.push({ type: 'tasks', data: { items: [], dropped: 1 } });
    feed.push({ type: 'snapshot', data: { ...snapshot, atMs: 2 } });
    const events = (body: string): { type: string; data: Record<string, unknown> }[] =>
      [...body.matchAll(/event: (\w+)\ndata: (.*)\n\n/g)].map((m) => ({ type: m[1]!, data: JSON.parse(m[2]!) as Record<string, unknown> }));
    await waitFor('both snapshots on both streams', () => events(developer.body()).length === 3 && events(clusterOnly.body()).length === 2);
    expect(events(developer.body()).map((e) => [e.type, e.data.workers, e.data.tasks])).toEqual([['snapshot', [], tasks], ['tasks', undefined, undefined], ['snapshot', [], tasks]]);
    const zero = { pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, stopped: 0, lost: 0 };
    expect(events(clusterOnly.body()).map((e) => [e.type, e.data.workers, e.data.tasks])).toEqual([['snapshot', [], zero], ['snapshot', [], zero]]);
    developer.res.destroy();
    clusterOnly.res.destroy();
  });

  it("a stream outlives the server's request timeouts (they bound receiving a request, not answering it)", async () => {
    const app = buildBaseApp({ server: { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 100, keepAliveTimeoutMs: 300 } });
    const feed = new HandFeed();
    void app.register(eventRoutes, { events: feed });
    const base = await serve(app);
    const stream = await open(`${base}/v1/events`);
    let closed = false;
    void stream.ended.then(() => (closed = true));
    await waitFor('the subscription', () => feed.sends.size === 1);
    // A request opened after the stream whose body never ends: the server closes it past its receive timeout, by
    // which time the older stream is past every bound too, and must still be open.
    const { port } = new URL(base);
    const slow = netConnect(Number(port), '127.0.0.1');
    slow.write('POST /v1/nothing HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{');
    const slowClosed = new Promise<void>((r) => slow.on('close', () => r()));
    slow.on('error', () => undefined);
    slow.resume(); // read its 408, or 'close' never comes
    await slowClosed;
    expect(closed).toBe(false);
    feed.push({ type: 'tasks', data: { items: [], dropped: 0 } });
    await waitFor('the event after the wait', () => stream.body().includes('event: tasks'));
    stream.res.destroy();
  });

  it.each(['HTTP/1.1', 'HTTP/2'])('%s: a HEAD answers the headers at once and takes no stream (more HEADs than streams leave GETs served)', async (version) => {
    const app = buildBaseApp({});
    const feed = new HandFeed();
    void app.register(eventRoutes, { events: feed, streamsMax: 2 });
    const base = await serve(app);
    for (let i = 0; i < 4; i++) {
      const answer = await head(base, '/v1/events', { http2: version === 'HTTP/2' });
      expect(answer).toMatchObject({ status: 200, bodyBytes: 0, headers: { 'content-type': 'text/event-stream; charset=utf-8' } });
    }
    expect(feed.sends.size).toBe(0);
    const a = await open(`${base}/v1/events`);
    const b = await open(`${base}/v1/events`);
    expect([a.res.statusCode, b.res.statusCode]).toEqual([200, 200]);
    a.res.destroy();
    b.res.destroy();
  });

  it('a HEAD on a secure manager needs the same token as the GET', async () => {
    const base = await serve(secureApp(new HandFeed()));
    expect(await head(base, '/v1/events')).toMatchObject({ status: 401 });
    expect(await head(base, '/v1/events', { headers: { authorization: `Bearer ${mint('viewer')}` } })).toMatchObject({ status: 200, bodyBytes: 0 });
  });

  it('a stream whose reader stopped reading is closed once its unsent bytes have waited the stall bound, far under 4 MiB', async () => {
    const app = buildBaseApp({});
    const feed = new HandFeed();
    void app.register(eventRoutes, { events: feed, streamsMax: 1, stall: { stallMsMax: 400, checkMs: 50 } });
    apps.push(app);
    const host = '127.0.69.2';
    await app.listen({ host, port: await freePortIn(host, 20000, 29999) });
    const base = `http://${host}:${(app.server.address() as AddressInfo).port}`;
    // Over HTTP/2 the reader's flow-control window (64 KiB) holds what it does not read on the server, not in the
    // kernel's socket buffers (megabytes, which would take a quiet feed many minutes to fill).
    const session = http2Connect(base);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':path': '/v1/events' });
      stream.on('error', () => undefined);
      stream.pause();
      await waitFor('the subscription', () => feed.sends.size === 1);
      const big = { type: 'tasks', data: { items: [{ id: 't1', name: 'x'.repeat(100_000) }], dropped: 0 } } as unknown as DashboardEvent;
      for (let i = 0; i < 10; i++) feed.push(big); // 1 MB
      await waitFor('the stalled stream closed', () => feed.sends.size === 0, 5000);
    } finally {
      session.destroy();
    }
    // Its slot is free: the dashboard is served again.
    const again = await open(`${base}/v1/events`);
    expect(again.res.statusCode).toBe(200);
    again.res.destroy();
  });

  it('serves at most streamsMax streams (429 QUEUE_FULL past it), and app.close() ends the open ones', async () => {
    const app = buildBaseApp({});
    const feed = new HandFeed();
    void app.register(eventRoutes, { events: feed, streamsMax: 2 });
    const base = await serve(app);
    const a = await open(`${base}/v1/events`);
    await open(`${base}/v1/events`);
    const third = await fetch(`${base}/v1/events`);
    expect([third.status, ((await third.json()) as { error: { code: string } }).error.code]).toEqual([429, 'QUEUE_FULL']);
    a.res.destroy();
    await waitFor('a slot freed', () => feed.sends.size === 1);
    const again = await open(`${base}/v1/events`);
    expect(again.res.statusCode).toBe(200);
    await app.close();
    await again.ended;
    apps.splice(0);
  });
});

describe('/ui and CORS', () => {
  it('serves the dashboard and the vendored libraries to anyone, and nothing else from node_modules', async () => {
    const base = await serve(secureApp(new HandFeed()));
    const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
    expect([redirect.status, redirect.headers.get('location')]).toEqual([302, '/ui/']);
    const index = await fetch(`${base}/ui/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('<script type="importmap">');
    expect(index.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    for (const path of ['/ui/app.js', '/ui/style.css', '/ui/vendor/preact/preact.module.js', '/ui/vendor/preact-hooks/hooks.module.js', '/ui/vendor/htm/htm.module.js', '/ui/vendor/uplot/uPlot.esm.js', '/ui/vendor/uplot/uPlot.min.css']) {
      expect(await statusOf(base + path), path).toBe(200);
    }
    for (const path of ['/ui/vendor/preact/preact.js', '/ui/vendor/preact/../package.json', '/ui/vendor/uplot/uPlot.cjs.js', '/ui/nothing.js']) {
      expect(await statusOf(base + path), path).toBe(404);
    }
  });

  it("answers a removed member's origin too, when the service knows it though no request came from it while it was one", async () => {
    const service = Object.assign(new FakeManagerService(), { knownApiAddresses: () => ['127.0.0.1:8001', '127.0.0.9:8009'] });
    const base = await serve(buildManagerApp({ service, events: new HandFeed(), security: { resolveToken: (a) => tokens.get(a) ?? null } }));
    const removed = 'http://127.0.0.9:8009';
    const preflight = await fetch(`${base}/v1/tasks`, { method: 'OPTIONS', headers: { origin: removed, 'access-control-request-method': 'POST' } });
    expect([preflight.status, preflight.headers.get('access-control-allow-origin')]).toEqual([204, removed]);
  });

  it('answers the members own origins (preflight and request), and no other origin', async () => {
    const base = await serve(secureApp(new HandFeed()));
    const member = 'http://127.0.0.2:8002'; // m2 in the fake service's view
    const preflight = await fetch(`${base}/v1/tasks`, { method: 'OPTIONS', headers: { origin: member, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(member);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('idempotency-key');
    const read = await fetch(`${base}/v1/cluster`, { headers: { origin: member, authorization: `Bearer ${mint('viewer')}` } });
    expect([read.status, read.headers.get('access-control-allow-origin')]).toEqual([200, member]);
    const stranger = 'http://evil.example:8002';
    const refused = await fetch(`${base}/v1/tasks`, { method: 'OPTIONS', headers: { origin: stranger, 'access-control-request-method': 'POST' } });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const other = await fetch(`${base}/v1/cluster`, { headers: { origin: stranger, authorization: `Bearer ${mint('viewer')}` } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
