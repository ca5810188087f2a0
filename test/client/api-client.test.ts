// ApiClient against a real listening manager app with a fake service: answers, server errors, transport errors.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/client/api-client.js';
import { normaliseBaseUrl } from '../../src/client/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { FakeManagerService } from '../api/fake-service.js';
import { rejection } from '../support/errors.js';

const service = new FakeManagerService();
const app = buildManagerApp({ service });
let client: ApiClient;
let silent: Server;
let silentUrl: string;

beforeAll(async () => {
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new ApiClient(url);
  // Accepts connections and never answers.
  silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentUrl = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await app.close();
  silent.closeAllConnections();
  await new Promise((r) => silent.close(r));
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
    expect(await client.health()).toEqual({ status: 'ok' });
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

  it('normalises base URLs', () => {
    expect(normaliseBaseUrl('127.0.0.1:8001')).toBe('http://127.0.0.1:8001');
    expect(normaliseBaseUrl('http://h:1/')).toBe('http://h:1');
    expect(normaliseBaseUrl('https://h/prefix/')).toBe('https://h/prefix');
    expect(() => normaliseBaseUrl('ftp://h')).toThrow(/not an http/);
    expect(() => normaliseBaseUrl('http://')).toThrow(/not a URL/);
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
