// ApiClient against a real listening manager app with a fake service: answers, server errors, transport errors.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/client/api-client.js';
import { baseUrlProblem, normaliseBaseUrl } from '../../src/client/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { Clock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import type { Random } from '../../src/lib/random.js';
import { defaultView, FakeManagerService, FakeMembershipService } from '../api/fake-service.js';
import { rejection } from '../support/errors.js';

const service = new FakeManagerService();
const app = buildManagerApp({ service });
let client: ApiClient;
let silent: Server;
let silentUrl: string;
let silent2: Server;
let silentUrl2: string;

beforeAll(async () => {
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new ApiClient(url);
  // Accepts connections and never answers.
  silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentUrl = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  silent2 = createServer(() => undefined);
  await new Promise<void>((r) => silent2.listen(0, '127.0.0.1', r));
  silentUrl2 = `127.0.0.1:${(silent2.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await app.close();
  for (const s of [silent, silent2]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe('ApiClient', () => {
  it('puts, gets and deletes keys, slashes included', async () => {
    expect(await client.kvPut('tasks/t1', 'v1')).toEqual({ key: 'tasks/t1', version: 1 });
    expect(await client.kvPut('tasks/t1', 'v2', 1)).toEqual({ key: 'tasks/t1', version: 2 });
    expect(await client.kvGet('tasks/t1', 'stale')).toEqual({ key: 'tasks/t1', value: 'v2', version: 2 });
    expect(await client.kvDelete('tasks/t1', 2)).toEqual({ key: 'tasks/t1', version: 3 });
    expect(service.calls.map((c) => c.args)).toEqual([
      ['tasks/t1', 'v1', undefined],
      ['tasks/t1', 'v2', 1],
      ['tasks/t1', 'stale'],
      ['tasks/t1', 2],
    ]);
  });

  it('reads the cluster view, health and readiness', async () => {
    // A manager without scheduled backups says so (backup: null) beside the service's view.
    expect(await client.cluster()).toEqual({ ...service.view, backup: null });
    expect(await client.health()).toMatchObject({ status: 'ok' });
    expect(await client.ready()).toEqual({ ready: true });
  });

  it('sends the request id', async () => {
    await client.kvPut('a', 'x', undefined, { requestId: 'cli-1' });
    expect(service.calls.at(-1)!.ctx.requestId).toBe('cli-1');
  });

  it('turns error bodies back into MinkubeErrors', async () => {
    expect(await rejection(client.kvGet('missing'))).toMatchObject({ code: 'KV_KEY_NOT_FOUND', status: 404, message: 'no key "missing"' });
    expect(await rejection(client.kvPut('a', 'y', 99))).toMatchObject({ code: 'KV_VERSION_MISMATCH', status: 409 });
    service.failNext = new MinkubeError('NO_LEADER');
    expect(await rejection(client.kvGet('a'))).toMatchObject({ code: 'NO_LEADER', status: 503 });
  });

  it('refuses an invalid key without a round trip', async () => {
    const before = service.calls.length;
    expect(await rejection(client.kvGet('a/../b'))).toMatchObject({ code: 'INVALID_KEY' });
    expect(await rejection(client.kvPut('', 'x'))).toMatchObject({ code: 'INVALID_KEY' });
    expect(service.calls.length).toBe(before);
  });

  it('a refused connection is UNREACHABLE naming the URL', async () => {
    const port = await closedPort();
    const e = await rejection(new ApiClient(`http://127.0.0.1:${port}`).cluster());
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toBe(`cannot reach http://127.0.0.1:${port}/v1/cluster (ECONNREFUSED)`);
    const put = await rejection(new ApiClient(`127.0.0.1:${port}`).kvPut('a', 'b'));
    expect(put.message).toBe(`cannot reach http://127.0.0.1:${port}/v1/kv/a (ECONNREFUSED)`);
  });

  it('no answer in time is TIMEOUT naming the URL', async () => {
    const e = await rejection(new ApiClient(silentUrl, { timeoutMs: 100 }).kvPut('a', 'b'));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toContain(`PUT http://${silentUrl}/v1/kv/a: no answer within 100 ms`);
  });

  it('a GET that times out does not say its outcome is unknown; a write does', async () => {
    const get = await rejection(new ApiClient(silentUrl, { timeoutMs: 100 }).kvGet('a'));
    expect(get.message).toBe(`GET http://${silentUrl}/v1/kv/a: no answer within 100 ms`);
    const put = await rejection(new ApiClient(silentUrl, { timeoutMs: 100 }).kvPut('a', 'b'));
    expect(put.message).toMatch(/; the outcome is unknown$/);
  });

  it('asks the manager to answer within seven tenths of its own timeout (X-Minkube-Timeout-Ms), not 0.5 s less: a NO_LEADER that came later than that on a loaded host was never heard', async () => {
    const asked: (string | undefined)[] = [];
    const recorder = createServer((req, res) => {
      asked.push(req.headers['x-minkube-timeout-ms'] as string | undefined);
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NO_LEADER', message: 'no leader' } }));
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    try {
      const url = `127.0.0.1:${(recorder.address() as AddressInfo).port}`;
      for (const timeoutMs of [2500, 10_000, 120]) await rejection(new ApiClient(url, { timeoutMs }).kvPut('a', 'v'));
      expect(asked).toEqual(['1750', '7000', '100']);
    } finally {
      recorder.closeAllConnections();
      await new Promise((r) => recorder.close(r));
    }
  });

  it('normalises base URLs', () => {
    expect(normaliseBaseUrl('127.0.0.1:8001')).toBe('http://127.0.0.1:8001');
    expect(normaliseBaseUrl('http://h:1/')).toBe('http://h:1');
    expect(normaliseBaseUrl('https://h/prefix/')).toBe('https://h/prefix');
    expect(() => normaliseBaseUrl('ftp://h')).toThrow(/not an http/);
    expect(() => normaliseBaseUrl('http://')).toThrow(/not a URL/);
  });

  it('takes as an address given by hand an http(s) URL or host:port, and no bare word (it would be tried as a host name)', () => {
    for (const ok of ['127.0.0.1:8001', '[::1]:8001', 'm1.example:65535', 'http://h', 'https://h:1/prefix']) expect(baseUrlProblem(ok), ok).toBeNull();
    expect(baseUrlProblem('not-a-url')).toBe('not an http(s) URL nor a host:port: "not-a-url"');
    for (const bad of ['127.0.0.1', 'h:0', 'h:65536', 'h:80/x', ':80', 'a b:80', 'user@h:80']) expect(baseUrlProblem(bad), bad).toMatch(/^not an http\(s\) URL nor a host:port: /);
    expect(baseUrlProblem('ftp://h')).toBe('not an http(s) URL: ftp://h');
    expect(baseUrlProblem('http://')).toBe('not a URL: "http://"');
  });
});

describe('ApiClient with alternate managers', () => {
  const other = new FakeManagerService(defaultView({ id: 'm2' }));
  const otherApp = buildManagerApp({ service: other });
  let otherUrl: string;
  let refusedUrl: string;
  beforeAll(async () => {
    otherUrl = await otherApp.listen({ host: '127.0.0.1', port: 0 });
    refusedUrl = `http://127.0.0.1:${await closedPort()}`;
  });
  afterAll(() => otherApp.close());

  it('sends a request that never reached the first manager to the next, and keeps using the one that answered', async () => {
    const c = new ApiClient(refusedUrl, { alternateUrls: [otherUrl] });
    expect(c.baseUrl).toBe(refusedUrl);
    expect(c.movedOn).toBe(false);
    // A write too: a refused connection delivered nothing.
    expect(await c.kvPut('fo/a', 'x')).toMatchObject({ key: 'fo/a' });
    expect(c.baseUrl).toBe(otherUrl);
    expect(c.movedOn).toBe(true);
    expect((await c.cluster()).id).toBe('m2');
    expect(other.calls.map((x) => x.method)).toEqual(['kvPut']);
  });

  it('moves a read on after a passing failure, never a write whose outcome is unknown', async () => {
    const read = new ApiClient(silentUrl, { timeoutMs: 150, alternateUrls: [otherUrl] });
    await other.kvPut('fo/b', 'y', undefined, {} as never);
    expect(await read.kvGet('fo/b')).toMatchObject({ value: 'y' });
    expect(read.baseUrl).toBe(otherUrl);
    const write = new ApiClient(silentUrl, { timeoutMs: 150, alternateUrls: [otherUrl] });
    const e = await rejection(write.kvPut('fo/b', 'z'));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toContain('the outcome is unknown');
    expect(write.baseUrl).toBe(`http://${silentUrl}`);
    expect(other.data.get('fo/b')?.value).toBe('y');
    // A server's own passing answer (NO_LEADER) moves a read on too.
    service.failNext = new MinkubeError('NO_LEADER');
    const viaFirst = new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] });
    expect(await viaFirst.kvGet('fo/b')).toMatchObject({ value: 'y' });
    // So does a manager that cannot reach a task's worker (WORKER_UNAVAILABLE): another may.
    service.failNext = new MinkubeError('WORKER_UNAVAILABLE');
    const viaCut = new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] });
    expect(await viaCut.kvGet('fo/b')).toMatchObject({ value: 'y' });
    expect(viaCut.baseUrl).toBe(otherUrl);
  });

  it('moves a write on after a 503 the manager answered (NO_LEADER, NOT_READY, STORAGE_RECOVERING, UNREACHABLE: not applied), never after other refusals', async () => {
    // UNREACHABLE: a follower whose forward to the leader could not be sent (refused, lookup, TLS) says so in a 503.
    for (const code of ['NO_LEADER', 'NOT_READY', 'STORAGE_RECOVERING', 'UNREACHABLE'] as const) {
      service.failNext = new MinkubeError(code);
      const c = new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] });
      expect(await c.kvPut(`fo/${code}`, 'w')).toMatchObject({ key: `fo/${code}` });
      expect(c.baseUrl).toBe(otherUrl);
      expect(other.data.get(`fo/${code}`)?.value).toBe('w');
    }
    // A refusal any manager would give (a version mismatch) is the answer.
    service.failNext = new MinkubeError('KV_VERSION_MISMATCH');
    const c = new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] });
    expect((await rejection(c.kvPut('fo/conflict', 'w'))).code).toBe('KV_VERSION_MISMATCH');
    expect(c.baseUrl).toBe(client.baseUrl);
    expect(other.data.has('fo/conflict')).toBe(false);
  });

  it("moves every request on from a removed manager's NOT_READY (not a member: applied nothing), membership changes included", async () => {
    // The leader that removed itself, in the moment before its successor is known: it refuses everything at once.
    const removed = new FakeMembershipService();
    const removedApp = buildManagerApp({ service: new FakeManagerService(), membership: removed });
    const live = new FakeMembershipService();
    const liveApp = buildManagerApp({ service: other, membership: live });
    const [removedUrl, liveUrl] = [await removedApp.listen({ host: '127.0.0.1', port: 0 }), await liveApp.listen({ host: '127.0.0.1', port: 0 })];
    const notMember = (): MinkubeError =>
      new MinkubeError('NOT_READY', 'this manager is not a member of the cluster (removed, or not added yet): send the request to another manager');
    try {
      const requests: [string, (c: ApiClient) => Promise<unknown>][] = [
        ['removeMember', (c) => c.removeMember('m1')],
        ['transferLeader', (c) => c.transferLeader('m2')],
        ['addMember', (c) => c.addMember({ id: 'm4', raftAddress: '127.0.0.4:7004', apiAddress: '127.0.0.4:8004' })],
        ['listMembers', (c) => c.listMembers()],
      ];
      for (const [method, send] of requests) {
        removed.failNext = notMember();
        const c = new ApiClient(removedUrl, { alternateUrls: [liveUrl] });
        await send(c);
        expect(c.baseUrl, method).toBe(liveUrl);
        expect(removed.calls.at(-1)?.method).toBe(method);
        expect(live.calls.at(-1)?.method).toBe(method);
      }
      // Alone, it is the answer, as it came.
      removed.failNext = notMember();
      expect(await rejection(new ApiClient(removedUrl).removeMember('m1'))).toMatchObject({ code: 'NOT_READY', status: 503, message: notMember().message });
    } finally {
      await Promise.all([removedApp.close(), liveApp.close()]);
    }
  });

  it("never sends a membership change on after a follower's 504 TIMEOUT (its forward to the leader was cut: it may be applied)", async () => {
    const follower = new FakeMembershipService();
    const followerApp = buildManagerApp({ service: new FakeManagerService(), membership: follower });
    const live = new FakeMembershipService();
    const liveApp = buildManagerApp({ service: other, membership: live });
    const [followerUrl, liveUrl] = [await followerApp.listen({ host: '127.0.0.1', port: 0 }), await liveApp.listen({ host: '127.0.0.1', port: 0 })];
    const cut = (): MinkubeError => new MinkubeError('TIMEOUT', 'this manager forwarded the request to the leader m3 (http://127.0.0.3:8003), which closed the connection before answering (other side closed); the outcome is unknown');
    try {
      for (const [method, send] of [
        ['removeMember', (c: ApiClient) => c.removeMember('m9')],
        ['addMember', (c: ApiClient) => c.addMember({ id: 'm4', raftAddress: '127.0.0.4:7004', apiAddress: '127.0.0.4:8004' })],
        ['transferLeader', (c: ApiClient) => c.transferLeader('m2')],
      ] as const) {
        follower.failNext = cut();
        const c = new ApiClient(followerUrl, { alternateUrls: [liveUrl] });
        expect(await rejection(send(c)), method).toMatchObject({ code: 'TIMEOUT', status: 504, message: cut().message });
        expect(c.baseUrl).toBe(followerUrl);
      }
      expect(live.calls).toEqual([]);
    } finally {
      await Promise.all([followerApp.close(), liveApp.close()]);
    }
  });

  it("shows the manager's answer that says why (NO_LEADER with its reason) over a later one in the usual words", async () => {
    service.failNext = new MinkubeError('NO_LEADER', 'no leader is known: 2 of 3 voters (m1, m3) are recovering lost or damaged storage');
    other.failNext = new MinkubeError('NO_LEADER');
    const e = await rejection(new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] }).kvPut('fo/why', 'y'));
    expect(e.code).toBe('NO_LEADER');
    // The later manager is named by its own answer (it was named the first one's, and the first one not at all).
    expect(e.message).toBe(`no leader is known: 2 of 3 voters (m1, m3) are recovering lost or damaged storage (also tried ${otherUrl}: NO_LEADER)`);
  });

  it("leads with an intact manager's NO_LEADER over a recovering one's, whatever their order", async () => {
    const recovering = (): MinkubeError => new MinkubeError('NO_LEADER', 'no leader is known; this manager is recovering lost or damaged storage', { details: { storageRecovering: true } });
    const intact = (): MinkubeError => new MinkubeError('NO_LEADER', 'no leader is known: 2 of 3 voters (m2, m3) are recovering lost or damaged storage');
    for (const [first, second] of [[intact, recovering], [recovering, intact]] as const) {
      service.failNext = first();
      other.failNext = second();
      const e = await rejection(new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] }).kvPut('fo/intact', 'y'));
      expect(e.code).toBe('NO_LEADER');
      expect(e.message).toMatch(/^no leader is known: 2 of 3 voters \(m2, m3\) are recovering lost or damaged storage \(also tried /);
      // The recovering one is named, the intact one is not: its answer is the message.
      const recoveringUrl = first === recovering ? client.baseUrl : otherUrl;
      expect(e.message).toMatch(new RegExp(`\\(also tried ${recoveringUrl.replace(/[.]/g, '\\.')}: NO_LEADER\\)$`));
    }
  });

  it("leads with an intact manager's NO_LEADER over a recovering one's NOT_READY for a token it cannot check, whatever their order (outside tester)", async () => {
    const recovering = (): MinkubeError => new MinkubeError('NOT_READY', 'this manager is recovering lost or damaged storage and cannot check the token: ...', { details: { storageRecovering: true } });
    const intact = (): MinkubeError => new MinkubeError('NO_LEADER');
    for (const [first, second] of [[intact, recovering], [recovering, intact]] as const) {
      service.failNext = first();
      other.failNext = second();
      const e = await rejection(new ApiClient(client.baseUrl, { alternateUrls: [otherUrl] }).kvPut('fo/token', 'y'));
      expect(e.code).toBe('NO_LEADER');
      expect(e.message).toMatch(/\(also tried \S+: NOT_READY\)$/);
    }
  });

  it("leads with a manager's own answer (NO_LEADER) over the managers it could not reach, whatever their order", async () => {
    const down1 = `http://127.0.0.1:${await closedPort()}`;
    const down2 = `http://127.0.0.1:${await closedPort()}`;
    service.failNext = new MinkubeError('NO_LEADER');
    const e = await rejection(new ApiClient(client.baseUrl, { alternateUrls: [down1, down2] }).kvPut('fo/nl', 'y'));
    expect(e.code).toBe('NO_LEADER');
    expect(e.message).toBe(`${new MinkubeError('NO_LEADER').message} (also tried ${down1}: UNREACHABLE; ${down2}: UNREACHABLE)`);
  });

  it('sends a write with an Idempotency-Key on after a timeout', async () => {
    const created = await rejection(new ApiClient(silentUrl, { timeoutMs: 150, alternateUrls: [otherUrl] }).submitTask({ image: 'busybox', command: ['true'] } as never, { attempts: 1 }));
    // The fake service has no task routes: its 404, not the silent one's TIMEOUT, shows the submission reached it;
    // the message names the manager tried before it.
    expect(created.code).toBe('NOT_FOUND');
    expect(created.message).toMatch(new RegExp(`\\(also tried http://${silentUrl.replace(/[.]/g, '\\.')}: TIMEOUT\\)$`));
  });

  it('names every manager tried when none can serve', async () => {
    const second = `http://127.0.0.1:${await closedPort()}`;
    const e = await rejection(new ApiClient(refusedUrl, { alternateUrls: [second] }).kvPut('a', 'b'));
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toBe(`cannot reach ${second}/v1/kv/a (ECONNREFUSED) (also tried ${refusedUrl}: UNREACHABLE)`);
  });

  it('names the managers tried before the one whose answer it is, however few', async () => {
    // A write: the first manager has no leader (moved on), the second times out (not moved on: outcome unknown).
    service.failNext = new MinkubeError('NO_LEADER');
    const e = await rejection(new ApiClient(client.baseUrl, { timeoutMs: 150, alternateUrls: [silentUrl] }).kvPut('fo/x', 'y'));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toContain('the outcome is unknown');
    expect(e.message).toContain(`(also tried ${client.baseUrl}: NO_LEADER)`);
  });

  it('a read that failed after pauses says how many tries over how long (one try\'s timeout is not the wait)', async () => {
    const e = await rejection(new ApiClient(silentUrl, { timeoutMs: 100, readRetries: 2 }).kvGet('a'));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toMatch(/no answer within 100 ms \(3 tries over [0-9.]+ s\)$/);
  });

  it('does not repeat a round in which every manager timed out', async () => {
    const c = new ApiClient(silentUrl, { timeoutMs: 100, readRetries: 2, alternateUrls: [`http://${silentUrl}/`, silentUrl2] });
    const started = Date.now();
    const e = await rejection(c.kvGet('a'));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toContain(`(also tried http://${silentUrl}: TIMEOUT)`);
    // Two managers (the duplicate is dropped), one try each: not three rounds.
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('ApiClient retries', () => {
  /** Answers each request with a 503 of `code` while `failures` lasts, then 200 `okBody`. */
  let failures = 0;
  let code = 'NO_LEADER';
  let okBody: unknown = { ok: true };
  let requests = 0;
  const flaky = createServer((req, res) => {
    req.resume();
    requests++;
    const failing = failures-- > 0;
    res.writeHead(failing ? 503 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(failing ? { error: { code, message: `${code} for now` } } : okBody));
  });
  let flakyUrl: string;
  beforeAll(async () => {
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    flakyUrl = `127.0.0.1:${(flaky.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => flaky.close(() => r())));

  /** A clock that records each pause and ends it at once, and a random that always draws one half. */
  function recorded(): { pausesMs: number[]; clock: Clock; random: Random } {
    const pausesMs: number[] = [];
    const clock: Clock = { nowMs: () => Date.now(), monoMs: () => performance.now(), setTimeout: (fn, delayMs) => (pausesMs.push(delayMs), setImmediate(fn), { cancel: () => undefined }) };
    return { pausesMs, clock, random: { next: () => 0.5, int: (n) => Math.floor(n / 2) } };
  }

  it('pauses before each retry of a read for the one backoff, full jitter drawn from its random (not in step with other clients)', async () => {
    const { pausesMs, clock, random } = recorded();
    const c = new ApiClient(flakyUrl, { readRetries: 4, clock, random });
    [failures, code, okBody] = [4, 'NO_LEADER', { status: 'ok' }];
    expect(await c.request('GET', '/health')).toEqual({ status: 'ok' });
    // Half of each ceiling: 400 ms doubling, capped at 2 s.
    expect(pausesMs).toEqual([200, 400, 800, 1000]);
  });

  it('pauses before each retry of a submission the same way, and gives up after its attempts', async () => {
    const { pausesMs, clock, random } = recorded();
    const c = new ApiClient(flakyUrl, { clock, random });
    [failures, code, okBody] = [3, 'QUEUE_FULL', { id: 't1', state: 'pending' }];
    expect(await c.submitTask({ image: 'x' })).toEqual({ id: 't1', state: 'pending' });
    // Half of each ceiling: 500 ms doubling, capped at 1 s.
    expect(pausesMs).toEqual([250, 500, 500]);
    [failures, code] = [4, 'QUEUE_FULL'];
    expect((await rejection(c.submitTask({ image: 'x' }))).code).toBe('QUEUE_FULL');
    expect(pausesMs).toHaveLength(6);
  });

  it('neither pauses nor asks again after an answer no manager gives (200 {}): it will not change', async () => {
    const { pausesMs, clock, random } = recorded();
    const c = new ApiClient(flakyUrl, { readRetries: 4, clock, random });
    [failures, okBody, requests] = [0, {}, 0];
    const base = `http://${flakyUrl}`;
    expect(await rejection(c.submitTask({ image: 'x' }))).toMatchObject({ code: 'UNREACHABLE', message: `POST ${base}/v1/tasks did not answer as a Minkube manager's API does (id: missing)` });
    expect(await rejection(c.kvGet('a'))).toMatchObject({ code: 'UNREACHABLE', message: `GET ${base}/v1/kv/a did not answer as a Minkube manager's API does (key: missing)` });
    expect([requests, pausesMs]).toEqual([2, []]);
  });
});
