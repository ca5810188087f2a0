// The HTTP/1.1 edge as an outside tester drove it over raw sockets: bytes after a request that are not a request
// (a body sent without Content-Length, as node's http.request sends a DELETE's), a request with no Host, an empty
// chunked body, and headers given twice. Every answer on a connection is kept, in order; a request whose unframed
// body would be dropped is refused rather than carried out without it.
import { request as httpRequest } from 'node:http';
import { connect as h2Connect } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { RetentionService } from '../../src/contracts/services.js';
import { RawSockets, readAll } from '../support/raw-sockets.js';
import { waitFor } from '../support/wait.js';
import { FakeManagerService, FakeMembershipService } from './fake-service.js';

const host = '127.0.61.1';
const sockets = new RawSockets();
afterEach(() => sockets.destroyAll());

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** The whole answers in `data` (each with a Content-Length), in order; an unfinished one is left out. */
function answersIn(data: string): RawAnswer[] {
  const out: RawAnswer[] = [];
  let rest = data;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? '0');
    if (rest.length < end + 4 + length) return out;
    const text = rest.slice(end + 4, end + 4 + length);
    out.push({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: text === '' ? null : JSON.parse(text) });
    rest = rest.slice(end + 4 + length);
  }
}

interface Exchange {
  socket: Socket;
  /** Everything read so far. */
  data: () => string;
  closed: () => boolean;
}

async function exchange(port: number, text: string): Promise<Exchange> {
  const socket = await sockets.open(port, host);
  const reading = readAll(socket);
  socket.write(text);
  return { socket, ...reading };
}

/** Sends `text` and waits for the server to close the connection; its answers, in order. */
async function untilClosed(port: number, text: string): Promise<RawAnswer[]> {
  const x = await exchange(port, text);
  await waitFor(`the server to close the connection (got ${JSON.stringify(x.data())})`, x.closed, 15_000);
  return answersIn(x.data());
}

const errorOf = (code: string) => ({ error: { code, message: expect.any(String) } });

describe('bytes that are not a request after requests on one HTTP/1.1 connection (insecure manager app)', () => {
  const service = new FakeManagerService();
  const membership = new FakeMembershipService();
  const gcCalls: string[] = [];
  const retention = { gc: async () => (gcCalls.push('gc'), { removed: 0, tasks: 0 }) } as unknown as RetentionService;
  let app: FastifyInstance;
  let port = 0;
  beforeAll(async () => {
    app = buildManagerApp({ service, membership, retention, ui: false });
    await app.listen({ host, port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(() => app.close());

  it('a DELETE whose body came without Content-Length is refused, nothing deleted; then the 400 for the bytes', async () => {
    await service.kvPut('precious', 'v', undefined, { deadlineMs: Number.MAX_SAFE_INTEGER } as never);
    const answers = await untilClosed(port, 'DELETE /v1/kv/precious HTTP/1.1\r\nHost: x\r\n\r\n{"ifVersion":1}');
    expect(answers.map((a) => a.status)).toEqual([400, 400]);
    expect(answers[0]!.body).toEqual(errorOf('INVALID_BODY'));
    expect((answers[0]!.body as { error: { message: string } }).error.message).toMatch(/not a request.*without Content-Length or Transfer-Encoding.*nothing was done/);
    expect(answers[1]!.body).toEqual(errorOf('BAD_REQUEST'));
    expect(service.data.has('precious')).toBe(true);
    expect(service.calls.some((c) => c.method === 'kvDelete')).toBe(false);
  });

  it('a POST that takes an optional body, sent unframed with bytes after it, is refused too (no leader transfer)', async () => {
    const before = membership.calls.length;
    const answers = await untilClosed(port, 'POST /v1/cluster/leader HTTP/1.1\r\nHost: x\r\n\r\n{"id":"m2"}');
    expect(answers.map((a) => a.status)).toEqual([400, 400]);
    expect(answers[0]!.body).toEqual(errorOf('INVALID_BODY'));
    expect(membership.calls.length).toBe(before);
  });

  it('a PUT, a GET, then bytes that are not a request, in one write: both answers, in order, then the 400 and the close', async () => {
    const put = 'PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"value":"a"}';
    const answers = await untilClosed(port, `${put}GET /health HTTP/1.1\r\nHost: x\r\n\r\nBLAH\r\n\r\n`);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 400]);
    expect(answers[0]!.body).toMatchObject({ key: 'k1' });
    expect(answers[2]!.body).toEqual(errorOf('BAD_REQUEST'));
    expect(answers[2]!.headers['connection']).toBe('close');
    expect(service.data.get('k1')?.value).toBe('a');
  });

  it('pipelined valid requests, an unframed DELETE among them, are all carried out and answered', async () => {
    await service.kvPut('k2', 'v', undefined, { deadlineMs: Number.MAX_SAFE_INTEGER } as never);
    const x = await exchange(port, 'DELETE /v1/kv/k2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /v1/gc HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const answers = await waitFor('three answers', () => (answersIn(x.data()).length === 3 ? answersIn(x.data()) : false));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(service.data.has('k2')).toBe(false);
    expect(x.closed()).toBe(false);
  });

  it('bytes that are not a request after a DELETE already answered: 400 BAD_REQUEST, the DELETE stands', async () => {
    await service.kvPut('k3', 'v', undefined, { deadlineMs: Number.MAX_SAFE_INTEGER } as never);
    const x = await exchange(port, 'DELETE /v1/kv/k3 HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the DELETE answered', () => answersIn(x.data()).length === 1);
    x.socket.write('BLAH\r\n\r\n');
    await waitFor('the close', x.closed, 15_000);
    expect(answersIn(x.data()).map((a) => a.status)).toEqual([200, 400]);
    expect(service.data.has('k3')).toBe(false);
  });

  it('an empty chunked body is no body: POST /v1/gc, DELETE, POST /v1/cluster/leader without Content-Type', async () => {
    await service.kvPut('k4', 'v', undefined, { deadlineMs: Number.MAX_SAFE_INTEGER } as never);
    const chunked = (line: string): string => `${line} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`;
    const x = await exchange(port, chunked('POST /v1/gc') + chunked('DELETE /v1/kv/k4') + chunked('POST /v1/cluster/leader'));
    const answers = await waitFor('three answers', () => (answersIn(x.data()).length === 3 ? answersIn(x.data()) : false));
    expect(answers.map((a) => [a.status, a.body])).toEqual([
      [200, expect.anything()],
      [200, expect.anything()],
      [200, expect.objectContaining({ leaderId: expect.any(String) })],
    ]);
    expect(service.data.has('k4')).toBe(false);
    // node's client: req.write('') sends the headers with Transfer-Encoding: chunked, then the last chunk.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host, port, method: 'POST', path: '/v1/gc' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('');
      setImmediate(() => req.end());
    });
    expect(status).toBe(200);
  });

  it('a chunked body that is not empty, without Content-Type, is still refused (400 INVALID_BODY where none is taken, 415 elsewhere)', async () => {
    const chunked = (line: string): string => `${line} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`;
    const gc = await untilClosed(port, chunked('POST /v1/gc'));
    expect(gc[0]).toMatchObject({ status: 400, body: errorOf('INVALID_BODY') });
    const put = await untilClosed(port, chunked('PUT /v1/kv/k5'));
    expect(put[0]).toMatchObject({ status: 415, body: errorOf('UNSUPPORTED_MEDIA_TYPE') });
    expect((put[0]!.body as { error: { message: string } }).error.message).toMatch(/no Content-Type/);
  });
  it('over h2c, a DELETE body with no Content-Type or Content-Length is refused, not ignored; an empty one is no body', async () => {
    await service.kvPut('k8', 'v', undefined, { deadlineMs: Number.MAX_SAFE_INTEGER } as never);
    const session = h2Connect(`http://${host}:${port}`);
    const del = (body: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        // endStream: false, or node's client ends a DELETE's stream with its headers.
        const stream = session.request({ ':method': 'DELETE', ':path': '/v1/kv/k8' }, { endStream: false });
        let status = 0;
        let text = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => (text += d));
        stream.on('end', () => resolve({ status, text }));
        stream.on('error', reject);
        stream.end(body);
      });
    try {
      const refused = await del('{"ifVersion":1}');
      expect(refused.status).toBe(400);
      expect(JSON.parse(refused.text)).toEqual(errorOf('INVALID_BODY'));
      expect(service.data.has('k8')).toBe(true);
      expect((await del('')).status).toBe(200);
      expect(service.data.has('k8')).toBe(false);
    } finally {
      session.close();
    }
  });
});

describe('the base app: a route with no hook that waits, and the bound on the wait for answers before the 400', () => {
  let app: FastifyInstance;
  let port = 0;
  let acted = 0;
  beforeAll(async () => {
    app = buildBaseApp({ requestTimeoutMs: 300 });
    app.get('/never', () => new Promise(() => undefined));
    app.post('/act', (_req, reply) => void reply.send({ acted: ++acted }));
    await app.listen({ host, port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(() => app.close());

  it('an unframed POST with bytes after it that are not a request is refused before its handler runs', async () => {
    const answers = await untilClosed(port, 'POST /act HTTP/1.1\r\nHost: x\r\n\r\n{"a":1}');
    expect(answers.map((a) => a.status)).toEqual([400, 400]);
    expect(answers[0]!.body).toEqual(errorOf('INVALID_BODY'));
    expect(acted).toBe(0);
    const framed = await untilClosed(port, 'POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nBLAH\r\n\r\n');
    expect(framed.map((a) => a.status)).toEqual([200, 400]);
    expect(acted).toBe(1);
  });

  it('an answer that never comes: the connection is closed after the request timeout, nothing written', async () => {
    const x = await exchange(port, 'GET /never HTTP/1.1\r\nHost: x\r\n\r\nBLAH\r\n\r\n');
    await waitFor('the close', x.closed, 15_000);
    expect(x.data()).toBe('');
  });
});
