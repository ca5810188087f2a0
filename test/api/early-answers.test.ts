// Answers given while the client is still sending (413 before the body, 431 in the middle of a long URL) reach it, over
// HTTP/1.1 and HTTP/2, in cleartext and over TLS: the server drops what still comes, within bounds, before it closes
// the connection or the stream (src/api/linger.ts), rather than a close that resets the answer away; and a request
// that expects 100 Continue gets its 413 in place of the 100, before it sends a body that would be dropped.
import { connect as h2Connect, constants as h2Constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp, type ServerLimits } from '../../src/api/http.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { tlsServerOptions } from '../support/tls-server.js';

type Kind = 'cleartext' | 'TLS';
const kinds: Kind[] = ['cleartext', 'TLS'];
const bodyLimitBytes = 64 * 1024;
const tooLarge = { error: { code: 'PAYLOAD_TOO_LARGE', message: `the request body is larger than ${bodyLimitBytes} bytes` } };

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

interface Server {
  port: number;
  /** The CA to trust, over TLS. */
  ca: string | undefined;
}

async function listening(kind: Kind, server: Partial<ServerLimits> = {}): Promise<Server> {
  const https = kind === 'TLS' ? await tlsServerOptions() : undefined;
  app = buildBaseApp({ bodyLimitBytes, server, ...(https === undefined ? {} : { https }) });
  // A refusal before the body is read, as a credential check gives one.
  app.addHook('onRequest', (req, _reply, done) => done(req.headers['x-refuse'] === undefined ? undefined : new MinkubeError('FORBIDDEN')));
  app.put('/v1/kv/:key', async () => ({ stored: true }));
  app.get('/v1/tasks/:id', async () => ({ found: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (app.server.address() as AddressInfo).port, ca: https?.ca };
}

/** allowHalfOpen: keep sending after the server has ended its side (a client that ignores the answer). */
function socketTo(server: Server, allowHalfOpen = false): Socket {
  const options = { port: server.port, host: '127.0.0.1', allowHalfOpen };
  return server.ca === undefined ? netConnect(options) : tlsConnect({ ...options, ca: server.ca, ALPNProtocols: ['http/1.1'] });
}

interface RawExchange {
  /** What the server sent, until it closed. */
  text: string;
  status: number;
  body: unknown;
  /** The client's socket error (EPIPE, ECONNRESET), if any. */
  error: string | null;
  ms: number;
}

/**
 * HTTP/1.1 by hand: writes `head`, then `body` (a Buffer, or 'forever': as fast as the server reads, until it closes),
 * reading nothing back for `readAfterMs`: a reset sent meanwhile destroys the answer waiting in the client's buffer,
 * as it does for a curl still busy sending. Resolves once the connection is closed.
 */
function exchange(server: Server, head: string, body: Buffer | 'forever' | null, readAfterMs = 0): Promise<RawExchange> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = socketTo(server, body === 'forever');
    let text = '';
    let error: string | null = null;
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after 10 s; got ${JSON.stringify(text.slice(0, 200))}`));
    }, 10_000);
    socket.on('error', (err: Error & { code?: string }) => (error ??= err.code ?? err.message));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(guard);
      const answer = text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
      const [headLines = '', rest = ''] = answer.split('\r\n\r\n');
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(rest);
      } catch {
        parsed = rest;
      }
      resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headLines)?.[1] ?? 0), body: parsed, error, ms: Date.now() - started });
    });
    socket.once(server.ca === undefined ? 'connect' : 'secureConnect', () => {
      if (readAfterMs > 0) {
        socket.pause();
        setTimeout(() => socket.resume(), readAfterMs);
      }
      socket.write(head);
      if (body === 'forever') {
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const more = (): void => {
          while (!socket.destroyed && socket.write(chunk));
        };
        socket.on('drain', more);
        more();
      } else if (body !== null) {
        socket.write(body);
      }
    });
  });
}

const put = (length: number, extra = ''): string =>
  `PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n`;

/** A JSON body of `bytes` bytes: {"value":"xxx..."}. */
function jsonBody(bytes: number): Buffer {
  return Buffer.from(`{"value":"${'x'.repeat(bytes - 12)}"}`);
}

describe('HTTP/1.1: an early answer reaches a client that is still sending', () => {
  it.each(kinds)('%s: a body far over the limit is 413 PAYLOAD_TOO_LARGE, though the client reads only after sending', async (kind) => {
    const server = await listening(kind);
    const body = jsonBody(4 * 1024 * 1024);
    for (let i = 0; i < 3; i++) {
      const r = await exchange(server, put(body.length), body, 300);
      expect(r, r.error ?? '').toMatchObject({ status: 413, body: tooLarge });
      expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
    }
  });

  it('a refusal before the body (a credential check) closes the connection after it too, rather than read the whole body to keep it', async () => {
    const server = await listening('cleartext');
    const body = jsonBody(4 * 1024 * 1024);
    const r = await exchange(server, put(body.length, 'x-refuse: 1\r\n'), body, 300);
    expect(r, r.error ?? '').toMatchObject({ status: 403, body: { error: { code: 'FORBIDDEN' } } });
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
  });

  it.each(kinds)('%s: a 100 KB URL is 431 HEADERS_TOO_LARGE, though the client reads only after sending it', async (kind) => {
    const server = await listening(kind);
    for (let i = 0; i < 3; i++) {
      const r = await exchange(server, `GET /v1/tasks/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, null, 300);
      expect(r, r.error ?? '').toMatchObject({ status: 431, body: { error: { code: 'HEADERS_TOO_LARGE' } } });
    }
  });

  it.each(kinds)('%s: Expect: 100-continue over the limit is answered 413 at once, without a 100 first; under it, 100 then the answer', async (kind) => {
    const server = await listening(kind);
    // No body is sent: the answer must come without it, and the connection close.
    const refused = await exchange(server, put(10 * 1024 * 1024, 'Expect: 100-continue\r\n'), null);
    expect(refused.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(refused).toMatchObject({ status: 413, body: tooLarge });
    // So does a refusal before the body (a credential check), whatever the length.
    const forbidden = await exchange(server, put(1000, 'Expect: 100-continue\r\nx-refuse: 1\r\n'), null);
    expect(forbidden.text).toMatch(/^HTTP\/1\.1 403 /);
    // Under the limit the client waits for the 100, then sends.
    const small = jsonBody(1000);
    const accepted = await new Promise<string>((resolve, reject) => {
      const socket = socketTo(server);
      let text = '';
      socket.on('error', reject);
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(small);
        if (text.endsWith('}')) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.once(server.ca === undefined ? 'connect' : 'secureConnect', () => socket.write(put(small.length, 'Expect: 100-continue\r\n')));
    });
    expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\{"stored":true\}$/);
  });

  it.each(kinds)('%s: an expectation other than 100-continue is ignored (RFC 9110 allows it), not a bare 417', async (kind) => {
    const server = await listening(kind);
    const body = jsonBody(64);
    const r = await exchange(server, put(body.length, 'Expect: foo\r\nConnection: close\r\n'), body);
    expect(r, r.error ?? '').toMatchObject({ status: 200, body: { stored: true } });
  });

  it('a client that never stops sending is cut off at the linger bounds: bytes, or else time', async () => {
    const byBytes = await listening('cleartext', { lingerBytesMax: 256 * 1024, lingerMs: 20_000 });
    const cutByBytes = await exchange(byBytes, put(1024 * 1024 * 1024), 'forever');
    expect(cutByBytes).toMatchObject({ status: 413, body: tooLarge });
    expect(cutByBytes.ms).toBeLessThan(5000);
    await app!.close();
    const byTime = await listening('cleartext', { lingerBytesMax: 1024 * 1024 * 1024, lingerMs: 300 });
    const cutByTime = await exchange(byTime, put(1024 * 1024 * 1024), 'forever');
    expect(cutByTime).toMatchObject({ status: 413, body: tooLarge });
    expect(cutByTime.ms).toBeGreaterThanOrEqual(250);
    expect(cutByTime.ms).toBeLessThan(5000);
  });
});

interface H2Exchange {
  status: number;
  body: unknown;
  /** Whether the client could send its whole body (the stream took every chunk before it closed). */
  sentAll: boolean;
  /** Whether the server asked for the body with a 100 Continue. */
  continued: boolean;
  rstCode: number | undefined;
}

/** A PUT of `body` over HTTP/2, written as the server's flow control lets it. */
function h2Put(session: ClientHttp2Session, body: Buffer, headers: Record<string, string> = {}): Promise<H2Exchange> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'PUT', ':path': '/v1/kv/k', 'content-type': 'application/json', 'content-length': String(body.length), ...headers });
    let status = 0;
    let data = '';
    let sentAll = false;
    let continued = false;
    stream.on('continue', () => (continued = true));
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (data += d));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      if (status === 0) return reject(new Error(`no answer (stream reset with ${stream.rstCode})`));
      resolve({ status, body: JSON.parse(data) as unknown, sentAll, continued, rstCode: stream.rstCode });
    });
    const chunks = function* (): Generator<Buffer> {
      for (let at = 0; at < body.length; at += 16 * 1024) yield body.subarray(at, at + 16 * 1024);
    };
    if (headers.expect !== undefined) return;
    const source = Readable.from(chunks());
    source.on('end', () => (sentAll = true));
    source.pipe(stream);
  });
}

function h2SessionTo(server: Server): ClientHttp2Session {
  const url = `${server.ca === undefined ? 'http' : 'https'}://127.0.0.1:${server.port}`;
  const session = h2Connect(url, server.ca === undefined ? {} : ({ ca: server.ca } as SecureClientSessionOptions));
  session.on('error', () => undefined);
  return session;
}

describe('HTTP/2: an early answer is not reset away', () => {
  it.each(kinds)('%s: a body over the limit is 413, and the stream ends when the client ends it, not by a reset right after the answer', async (kind) => {
    const server = await listening(kind);
    const session = h2SessionTo(server);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await h2Put(session, jsonBody(2 * 1024 * 1024));
        expect(r).toMatchObject({ status: 413, body: tooLarge, sentAll: true });
      }
      // The session is still good for the next request.
      const ok = await h2Put(session, jsonBody(1000));
      expect(ok).toMatchObject({ status: 200, body: { stored: true } });
    } finally {
      session.close();
    }
  });

  it('past the linger bound the stream is reset with NO_ERROR, the answer already in', async () => {
    const server = await listening('cleartext', { lingerBytesMax: 256 * 1024, lingerMs: 20_000 });
    const session = h2SessionTo(server);
    try {
      const r = await h2Put(session, jsonBody(8 * 1024 * 1024));
      expect(r).toMatchObject({ status: 413, body: tooLarge, sentAll: false, rstCode: h2Constants.NGHTTP2_NO_ERROR });
    } finally {
      session.close();
    }
  });

  it.each(kinds)('%s: Expect: 100-continue over the limit is 413 without a 100', async (kind) => {
    const server = await listening(kind);
    const session = h2SessionTo(server);
    try {
      const r = await h2Put(session, jsonBody(2 * 1024 * 1024), { expect: '100-continue' });
      expect(r).toMatchObject({ status: 413, body: tooLarge, continued: false });
    } finally {
      session.close();
    }
  });
});
