// Every Minkube port speaks HTTP/1.1 and HTTP/2 (src/api/http.ts): in cleartext, a connection that opens with
// HTTP/2's preface is served as h2c and any other as HTTP/1.1; over TLS, ALPN decides. The same routes, answers and
// headers either way, the client certificate seen through an HTTP/2 request too, a silent connection cut off, and
// app.close() ending HTTP/2 sessions instead of waiting on them.
import { request as httpRequest } from 'node:http';
import { connect as h2Connect, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { OneWriteResponse, oneWriteResponses } from '../../src/api/h2-response.js';
import { buildBaseApp, type HttpsOptions } from '../../src/api/http.js';
import { TextStreams } from '../../src/api/text-stream.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { tlsServerOptions } from '../support/tls-server.js';
import { waitFor } from '../support/wait.js';

interface Answer {
  status: number;
  body: unknown;
  requestId: string | undefined;
}

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

async function listening(https?: HttpsOptions): Promise<string> {
  app = buildBaseApp({ ...(https ? { https } : {}), server: { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 100 } });
  app.get('/ping', async (req) => {
    const socket = req.raw.socket as Partial<TLSSocket>;
    const cert = socket.authorized === true ? socket.getPeerCertificate?.() : undefined;
    return { pong: true, version: req.raw.httpVersion, peer: cert?.subject?.CN ?? null };
  });
  app.put('/echo', async (req) => ({ got: req.body }));
  app.get('/items/:id', async (req) => ({ id: (req.params as { id: string }).id }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `${https ? 'https' : 'http'}://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

function h2(session: ClientHttp2Session, method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ':method': method, ':path': path, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...extra };
    const stream = session.request(headers);
    let status = 0;
    let requestId: string | undefined;
    let data = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
      requestId = h['x-request-id'] as string | undefined;
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (data += d));
    stream.on('end', () => resolve({ status, body: JSON.parse(data), requestId }));
    stream.on('error', reject);
    stream.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function h1(url: string, method: string, path: string, tls?: { ca: string; key?: string; cert?: string }, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { method, path, headers: body !== undefined ? { 'content-type': 'application/json' } : {}, ...(tls ?? {}) };
    const req = (tls ? httpsRequest : httpRequest)(url, options, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data), requestId: res.headers['x-request-id'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('HTTP/2 beside HTTP/1.1 on one port', () => {
  it('cleartext: h2c with prior knowledge and HTTP/1.1 get the same answers', async () => {
    const url = await listening();
    const session = h2Connect(url);
    try {
      const [a, b] = await Promise.all([h2(session, 'GET', '/ping'), h2(session, 'PUT', '/echo', { x: 1 })]);
      expect(a).toMatchObject({ status: 200, body: { pong: true, version: '2.0', peer: null } });
      expect(a.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(b).toMatchObject({ status: 200, body: { got: { x: 1 } } });
      // Errors keep their shape over HTTP/2: an unknown route, a body that is not JSON.
      expect(await h2(session, 'GET', '/nowhere')).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    } finally {
      session.close();
    }
    expect(await h1(url, 'GET', '/ping')).toMatchObject({ status: 200, body: { pong: true, version: '1.1' } });
    expect(await h1(url, 'PUT', '/echo', undefined, { y: 2 })).toMatchObject({ status: 200, body: { got: { y: 2 } } });
  });

  it('headers over 16 KiB are 431 HEADERS_TOO_LARGE over HTTP/2 as over HTTP/1.1, and a wrong method is 405 either way', async () => {
    const url = await listening();
    const session = h2Connect(url, { maxHeaderListPairs: 200, peerMaxConcurrentStreams: 10 });
    try {
      // Every time, not only before the client has the server's SETTINGS (node resets a stream past the announced bound).
      for (let i = 0; i < 3; i++) {
        expect(await h2(session, 'GET', '/ping', undefined, { 'x-big': 'a'.repeat(20_000) })).toMatchObject({ status: 431, body: { error: { code: 'HEADERS_TOO_LARGE' } } });
        expect(await h2(session, 'GET', `/items/${'a'.repeat(20_000)}`)).toMatchObject({ status: 431, body: { error: { code: 'HEADERS_TOO_LARGE' } } });
      }
      expect(await h2(session, 'GET', '/ping', undefined, { 'x-small': 'a'.repeat(1000) })).toMatchObject({ status: 200 });
      // 100 headers as over HTTP/1.1: the pseudo-headers (:method, :path, ...) are the request line, not headers.
      const many = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));
      expect(await h2(session, 'GET', '/ping', undefined, many(99))).toMatchObject({ status: 200 });
      expect(await h2(session, 'GET', '/ping', undefined, many(101))).toMatchObject({ status: 431, body: { error: { message: '101 headers; at most 100' } } });
      // Past node's default of 128 fields too (it reset the stream, ENHANCE_YOUR_CALM, with no answer).
      expect(await h2(session, 'GET', '/ping', undefined, many(150))).toMatchObject({ status: 431, body: { error: { message: '150 headers; at most 100' } } });
      // A method HTTP has not (HTTP/1.1's parser refuses it): 400 as over HTTP/1.1, not the router's fallback.
      expect(await h2(session, 'MFOO', '/ping')).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST', message: 'unknown method "MFOO"' } } });
      expect(await h2(session, 'GET', `/items/${'a'.repeat(100)}`)).toMatchObject({ status: 200 });
      expect(await h2(session, 'DELETE', '/ping')).toMatchObject({ status: 405, body: { error: { code: 'METHOD_NOT_ALLOWED', message: 'DELETE is not allowed on /ping; it takes GET, HEAD' } } });
    } finally {
      session.close();
    }
    expect(await h1(url, 'DELETE', '/echo')).toMatchObject({ status: 405, body: { error: { code: 'METHOD_NOT_ALLOWED' } } });
    // The path is a header too (:path), as the request line is over HTTP/1.1: a route parameter that long is 431 over
    // both, not the router's bound on a parameter (which came first over HTTP/2).
    for (const path of [`/items/${'a'.repeat(20_000)}`, `/${'a'.repeat(20_000)}`]) {
      const fresh = h2Connect(url);
      try {
        expect(await h2(fresh, 'GET', path)).toMatchObject({ status: 431, body: { error: { code: 'HEADERS_TOO_LARGE', message: expect.stringMatching(/^200\d\d bytes of headers; at most 16384$/) } } });
      } finally {
        fresh.close();
      }
      expect(await h1(url, 'GET', path)).toMatchObject({ status: 431, body: { error: { code: 'HEADERS_TOO_LARGE' } } });
    }
  });

  it.each(['cleartext', 'TLS'])('%s: a connection that sends nothing is closed after the header timeout', async (kind) => {
    const url = new URL(await listening(kind === 'TLS' ? await tlsServerOptions() : undefined));
    const started = Date.now();
    const closedAfterMs = await new Promise<number>((resolve) => {
      const socket = connect(Number(url.port), url.hostname);
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(Date.now() - started));
    });
    expect(closedAfterMs).toBeGreaterThanOrEqual(250);
    expect(closedAfterMs).toBeLessThan(3000);
  });

  it('TLS: ALPN picks h2 or HTTP/1.1, and the client certificate is seen either way', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const issue = (id: string, role: 'manager' | 'worker') =>
      issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
    const [server, client] = await Promise.all([issue('m1', 'manager'), issue('w1', 'worker')]);
    const url = await listening({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false });
    const tls = { ca: ca.certPem, key: client.keyPem, cert: client.certPem };
    const session = h2Connect(url, tls as SecureClientSessionOptions);
    try {
      expect(await h2(session, 'GET', '/ping')).toMatchObject({ status: 200, body: { pong: true, version: '2.0', peer: expect.stringContaining('w1') } });
      const anonymous = h2Connect(url, { ca: ca.certPem });
      try {
        expect(await h2(anonymous, 'GET', '/ping')).toMatchObject({ status: 200, body: { version: '2.0', peer: null } });
      } finally {
        anonymous.close();
      }
    } finally {
      session.close();
    }
    expect(await h1(url, 'GET', '/ping', tls)).toMatchObject({ status: 200, body: { pong: true, version: '1.1', peer: expect.stringContaining('w1') } });
  });

  it('TLS: a plain HTTP request is answered 400 HTTPS_REQUIRED naming the https URL; TLS clients are served as before', async () => {
    const https = await tlsServerOptions();
    const url = new URL(await listening(https));
    const plain = `http://127.0.0.1:${url.port}`;
    expect(await h1(plain, 'GET', '/ping?x=1')).toEqual({
      status: 400,
      body: { error: { code: 'HTTPS_REQUIRED', message: `this port speaks HTTPS only (the cluster is secure): use https://127.0.0.1:${url.port}/ping?x=1` } },
      requestId: undefined,
    });
    // Not HTTP at all: the same code, without a URL, and the connection closed.
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(Number(url.port), url.hostname);
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (data += d));
      socket.on('close', () => resolve(data));
      socket.write('hello\r\n');
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'HTTPS_REQUIRED', message: 'this port speaks HTTPS only (the cluster is secure)' } });
    // h2c by prior knowledge (curl --http2-prior-knowledge http://...): the same answer, in HTTP/2, and the session ended.
    const h2c = h2Connect(plain);
    h2c.on('error', () => undefined);
    try {
      const closed = new Promise<void>((resolve) => h2c.once('close', () => resolve()));
      expect(await h2(h2c, 'GET', '/ping?x=1')).toMatchObject({
        status: 400,
        body: { error: { code: 'HTTPS_REQUIRED', message: `this port speaks HTTPS only (the cluster is secure): use https://127.0.0.1:${url.port}/ping?x=1` } },
      });
      await closed;
    } finally {
      h2c.destroy();
    }
    // TLS, both protocols, after the look at the first bytes.
    const session = h2Connect(url.origin, { ca: https.ca });
    try {
      expect(await h2(session, 'GET', '/ping')).toMatchObject({ status: 200, body: { pong: true, version: '2.0' } });
    } finally {
      session.close();
    }
    expect(await h1(url.origin, 'PUT', '/echo', { ca: https.ca, key: https.key, cert: https.cert }, { z: 3 })).toMatchObject({ status: 200, body: { got: { z: 3 } } });
  });

  it.each(['cleartext', 'TLS'] as const)('%s: close does not wait out the header timeout for a connection that has sent nothing yet', async (kind) => {
    const https = kind === 'TLS' ? { https: await tlsServerOptions() } : {};
    app = buildBaseApp({ ...https, server: { headersTimeoutMs: 10_000, receiveTimeoutMs: 10_000, timeoutCheckIntervalMs: 100 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    // Until the server has taken the connection in (not only the kernel): else the close would find nothing to wait for.
    const accepted = new Promise((resolve) => app!.server.once('connection', resolve));
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    await accepted;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = Date.now();
    await app.close();
    app = null;
    await closed;
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('an HTTP/2 session that carries a long answer is not closed as idle while the answer is quiet', async () => {
    app = buildBaseApp({ server: { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 100, keepAliveTimeoutMs: 300 } });
    const streams = new TextStreams(app, 4, 'test streams');
    let endQuiet!: () => void;
    const quiet = new Promise<void>((resolve) => (endQuiet = resolve));
    app.get('/slow', async (_req, reply) => {
      const c = streams.begin(reply);
      async function* chunks(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('a\n');
        await quiet;
        yield Buffer.from('b\n');
      }
      await streams.send(reply, c, chunks());
      return reply;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const session = h2Connect(url);
    session.on('error', () => undefined);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    let data = '';
    const text = new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':method': 'GET', ':path': '/slow' });
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (data += d));
      stream.on('end', () => resolve(data));
      stream.on('error', reject);
    });
    // The quiet lasts until a session opened after the first line, carrying nothing, has been closed as idle: the
    // long answer's session, quiet since before that one opened, has had the same idle timeout pass.
    await waitFor('the first line', () => data === 'a\n');
    const idle = h2Connect(url);
    idle.on('error', () => undefined);
    await new Promise((resolve) => idle.once('goaway', resolve));
    idle.close();
    endQuiet();
    expect(await text).toBe('a\nb\n');
    expect(goaway).toBe(false);
    session.close();
  });

  it.each(['cleartext', 'TLS'] as const)('%s: an HTTP/2 answer ends with its last DATA frame (no wait for trailers); declared trailers still arrive', async (kind) => {
    expect(oneWriteResponses).toBe(true);
    const tls = kind === 'TLS' ? await tlsServerOptions() : undefined;
    app = buildBaseApp(tls === undefined ? {} : { https: tls });
    let askedForTrailers = 0;
    app.get('/plain', async (req, reply) => {
      const raw: unknown = reply.raw;
      if (raw instanceof OneWriteResponse) raw.stream.on('wantTrailers', () => askedForTrailers++);
      return { oneWrite: reply.raw instanceof OneWriteResponse, version: req.raw.httpVersion };
    });
    app.get('/trailed', async (_req, reply) => {
      reply.trailer('x-total', async () => '3');
      return { trailed: true };
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const session = h2Connect(url, tls === undefined ? {} : { ca: tls.ca as string });
    try {
      for (let i = 0; i < 3; i++) expect(await h2(session, 'GET', '/plain')).toMatchObject({ status: 200, body: { oneWrite: true, version: '2.0' } });
      expect(askedForTrailers).toBe(0);
      const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': '/trailed' });
        stream.on('trailers', (headers: Record<string, unknown>) => resolve({ ...headers }));
        stream.on('error', reject);
        stream.on('end', () => setTimeout(() => reject(new Error('ended without trailers')), 100));
        stream.resume();
      });
      expect(trailers).toMatchObject({ 'x-total': '3' });
    } finally {
      session.close();
    }
    // HTTP/1.1 answers are node's own objects, untouched.
    expect(await h1(url, 'GET', '/plain', tls === undefined ? undefined : { ca: tls.ca as string })).toMatchObject({ status: 200, body: { oneWrite: false, version: '1.1' } });
  });

  it('close ends open HTTP/2 sessions rather than waiting for their clients', async () => {
    const url = await listening();
    const session = h2Connect(url);
    session.on('error', () => undefined);
    expect(await h2(session, 'GET', '/ping')).toMatchObject({ status: 200 });
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const started = Date.now();
    await app!.close();
    app = null;
    await closed;
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
