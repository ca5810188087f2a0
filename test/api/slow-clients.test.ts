// Slow and idle clients cannot hold a port: over TLS as in cleartext, HTTP/1.1 and HTTP/2, a request whose headers or
// body do not arrive in time is answered 408 REQUEST_TIMEOUT and closed, an idle keep-alive connection is closed, and
// a long answer (a followed log) is not cut. With short bounds injected through the server options.
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp, type HttpsOptions, type ServerLimits } from '../../src/api/http.js';
import { tlsServerOptions } from '../support/tls-server.js';

const bounds: Partial<ServerLimits> = { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 50, keepAliveTimeoutMs: 300 };
const timedOut = { error: { code: 'REQUEST_TIMEOUT', message: 'the request was not received in time' } };

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

interface Listening {
  port: number;
  https: HttpsOptions | undefined;
}

async function listening(tls: boolean, server: Partial<ServerLimits> = bounds): Promise<Listening> {
  const https = tls ? await tlsServerOptions() : undefined;
  app = buildBaseApp({ server, ...(https === undefined ? {} : { https }) });
  app.get('/ping', async () => ({ pong: true }));
  app.put('/echo', async (req) => ({ got: req.body }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (app.server.address() as AddressInfo).port, https };
}

/** An HTTP/1.1 connection (over TLS: ALPN http/1.1), open once connected (and the handshake done). */
function h1Socket(server: Listening): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const options = { port: server.port, host: '127.0.0.1' };
    const socket = server.https === undefined ? netConnect(options) : tlsConnect({ ...options, ca: server.https.ca, ALPNProtocols: ['http/1.1'] });
    socket.once(server.https === undefined ? 'connect' : 'secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

interface Ending {
  /** What the server sent until it closed the connection. */
  text: string;
  /** From `since` to the close. */
  ms: number;
}

/** What `socket` receives until the server closes it; fails past `guardMs`. Calls `each` every `everyMs` meanwhile. */
function untilClosed(socket: Socket, since: number, options: { guardMs?: number; everyMs?: number; each?: () => void } = {}): Promise<Ending> {
  return new Promise((resolve, reject) => {
    let text = '';
    const every = options.each === undefined ? undefined : setInterval(options.each, options.everyMs ?? 100);
    const guard = setTimeout(() => {
      clearInterval(every);
      socket.destroy();
      reject(new Error(`still open after ${options.guardMs ?? 5000} ms; got ${JSON.stringify(text)}`));
    }, options.guardMs ?? 5000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(guard);
      clearInterval(every);
      resolve({ text, ms: Date.now() - since });
    });
  });
}

function answerOf(text: string): { status: number; body: unknown } {
  const at = text.indexOf('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0), body: at < 0 || at + 4 === text.length ? null : JSON.parse(text.slice(at + 4)) };
}

describe('TLS HTTP/1.1: the bounds of the cleartext port', () => {
  it('a connection idle after its handshake is answered 408 REQUEST_TIMEOUT at the header timeout, and closed', async () => {
    const server = await listening(true);
    const socket = await h1Socket(server);
    const end = await untilClosed(socket, Date.now());
    expect(answerOf(end.text)).toEqual({ status: 408, body: timedOut });
    expect(end.ms).toBeGreaterThanOrEqual(250);
    expect(end.ms).toBeLessThan(1500);
  });

  it('headers trickled one a tenth of a second are answered 408 at the header timeout', async () => {
    const server = await listening(true);
    const socket = await h1Socket(server);
    const started = Date.now();
    socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n');
    const end = await untilClosed(socket, started, { everyMs: 100, each: () => socket.write('X-a: b\r\n') });
    expect(answerOf(end.text)).toEqual({ status: 408, body: timedOut });
    expect(end.ms).toBeGreaterThanOrEqual(250);
    expect(end.ms).toBeLessThan(1500);
  });

  it('a body trickled a byte a tenth of a second is answered 408 at the receive timeout', async () => {
    const server = await listening(true);
    const socket = await h1Socket(server);
    const started = Date.now();
    socket.write('PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n');
    const end = await untilClosed(socket, started, { everyMs: 100, each: () => socket.write(' ') });
    expect(answerOf(end.text)).toEqual({ status: 408, body: timedOut });
    expect(end.ms).toBeGreaterThanOrEqual(550);
    expect(end.ms).toBeLessThan(2000);
  });

  it('a keep-alive connection idle after its answer is closed after the keep-alive timeout, with nothing more sent', async () => {
    const server = await listening(true);
    const socket = await h1Socket(server);
    const ended = untilClosed(socket, Date.now());
    socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
    const end = await ended;
    expect(answerOf(end.text)).toEqual({ status: 200, body: { pong: true } });
    // Node's own cleartext server closes it a second after its timeout.
    expect(end.ms).toBeLessThan(2500);
  });

  it('a client that stalls in its TLS handshake is closed at the header timeout', async () => {
    const server = await listening(true);
    const socket = netConnect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const started = Date.now();
    // The first byte of a TLS record (a handshake), and no more.
    socket.write(Buffer.from([0x16]));
    const end = await untilClosed(socket, started);
    expect(end.text).toBe('');
    expect(end.ms).toBeGreaterThanOrEqual(250);
    expect(end.ms).toBeLessThan(1500);
  });
});
