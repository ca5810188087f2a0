// Slow and idle clients cannot hold a port: over TLS as in cleartext, HTTP/1.1 and HTTP/2, a request whose headers or
// body do not arrive in time is answered 408 REQUEST_TIMEOUT and closed, an idle keep-alive connection is closed, and
// a long answer (a followed log) is not cut. With short bounds injected through the server options.
import { connect as h2Connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { addressKey } from '../../src/api/connections.js';
import { buildBaseApp, type HttpsOptions, type ServerLimits } from '../../src/api/http.js';
import { TextStreams } from '../../src/api/text-stream.js';
import { sleep, waitFor } from '../support/wait.js';
import { tlsServerOptions } from '../support/tls-server.js';

const bounds: Partial<ServerLimits> = { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 50, keepAliveTimeoutMs: 300 };
const timedOut = { error: { code: 'REQUEST_TIMEOUT', message: 'the request was not received in time' } };

let app: FastifyInstance | null = null;
/** The clients' connections, closed after each test (a failed one's too: the server's close would wait on them). */
const clients: { destroy(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await app?.close();
  app = null;
});

interface Listening {
  port: number;
  https: HttpsOptions | undefined;
}

/** What the routes saw: how many bodies reached /echo, and when the slow check of `x-slow` ended. */
let echoed = 0;
let slowCheckDone: Promise<void> = Promise.resolve();

async function listening(tls: boolean, server: Partial<ServerLimits> = bounds): Promise<Listening> {
  const https = tls ? await tlsServerOptions() : undefined;
  app = buildBaseApp({ server, ...(https === undefined ? {} : { https }) });
  echoed = 0;
  // A check before the body that takes a while (a credential check waiting on the leader, say).
  app.addHook('onRequest', async (req) => {
    if (req.headers['x-slow'] === undefined) return;
    slowCheckDone = sleep(Number(req.headers['x-slow']));
    await slowCheckDone;
  });
  app.get('/ping', async () => ({ pong: true }));
  app.put('/echo', async (req) => {
    echoed++;
    return { got: req.body };
  });
  // A long answer, quiet between its two lines for ?ms= (a followed log), by default twice the receive timeout.
  const streams = new TextStreams(app, 4, 'test streams');
  app.get('/follow', { config: { anyQuery: true } }, async (req, reply) => {
    const c = streams.begin(reply);
    const quietMs = Number((req.query as { ms?: string }).ms ?? 2 * (server.receiveTimeoutMs ?? 0));
    async function* lines(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('a\n');
      await sleep(quietMs);
      yield Buffer.from('b\n');
    }
    await streams.send(reply, c, lines());
    return reply;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (app.server.address() as AddressInfo).port, https };
}

function h2Session(server: Listening): ClientHttp2Session {
  const session = h2Connect(`${server.https === undefined ? 'http' : 'https'}://127.0.0.1:${server.port}`, server.https === undefined ? {} : { ca: server.https.ca });
  session.on('error', () => undefined);
  clients.push(session);
  return session;
}

interface H2Answer {
  status: number;
  text: string;
  requestId: string | undefined;
  /** From the request to the answer's headers. */
  ms: number;
}

/**
 * One HTTP/2 request; `trickle`: its body is sent a byte a tenth of a second, never ended (else it has none).
 * `answering` is called with the answer's headers.
 */
function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, trickle = false, answering?: () => void): Promise<H2Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: !trickle });
    let status = 0;
    let requestId: string | undefined;
    let text = '';
    const every = trickle ? setInterval(() => stream.writable && stream.write(' '), 100) : undefined;
    const guard = setTimeout(() => stream.destroy(new Error(`no answer after 5 s (status ${status})`)), 5000);
    stream.once('close', () => {
      clearInterval(every);
      clearTimeout(guard);
    });
    if (trickle) stream.write('{');
    let ms = 0;
    stream.on('response', (h) => {
      ms = Date.now() - started;
      status = Number(h[':status']);
      requestId = h['x-request-id'] as string | undefined;
      answering?.();
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (text += d));
    stream.on('end', () => {
      clearInterval(every);
      resolve({ status, text, requestId, ms });
    });
    stream.on('error', reject);
  });
}

const trickledPut = { ':method': 'PUT', ':path': '/echo', 'content-type': 'application/json' };

/** An HTTP/1.1 connection (over TLS: ALPN http/1.1), open once connected (and the handshake done). */
function h1Socket(server: Listening, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const options = { port: server.port, host: '127.0.0.1', localAddress };
    const socket = server.https === undefined ? netConnect(options) : tlsConnect({ ...options, ca: server.https.ca, ALPNProtocols: ['http/1.1'] });
    clients.push(socket);
    socket.once(server.https === undefined ? 'connect' : 'secureConnect', () => resolve(socket));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before it was open')));
  });
}

/**
 * A new keep-alive connection's `GET /ping`: its status and the connection, left open; 'refused' when the server
 * closes the connection without an answer.
 */
async function ping(server: Listening, localAddress?: string): Promise<{ status: number; socket: Socket } | 'refused'> {
  let socket: Socket;
  try {
    socket = await h1Socket(server, localAddress);
  } catch {
    return 'refused';
  }
  return new Promise((resolve) => {
    let text = '';
    socket.on('error', () => undefined);
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      const at = text.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? -1);
      if (at >= 0 && length >= 0 && text.length >= at + 4 + length) {
        socket.off('data', onData);
        resolve({ status: answerOf(text).status, socket });
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve('refused'));
    socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

/** A connection with a request under way: a PUT whose body has not all come. */
async function busyPut(server: Listening, localAddress?: string): Promise<Socket> {
  const socket = await h1Socket(server, localAddress);
  socket.on('error', () => undefined);
  socket.write('PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
  return socket;
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

  it('a body trickled a byte a tenth of a second is answered 408 at the receive timeout; a long answer is not cut', async () => {
    const server = await listening(true);
    const [socket, following] = await Promise.all([h1Socket(server), h1Socket(server)]);
    const started = Date.now();
    const followed = untilClosed(following, started);
    following.write('GET /follow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    socket.write('PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n');
    const end = await untilClosed(socket, started, { everyMs: 100, each: () => socket.write(' ') });
    expect(answerOf(end.text)).toEqual({ status: 408, body: timedOut });
    expect(end.ms).toBeGreaterThanOrEqual(550);
    expect(end.ms).toBeLessThan(2000);
    const follow = await followed;
    expect(follow.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(follow.text).toMatch(/\r\n\r\n2\r\na\n\r\n2\r\nb\n\r\n0\r\n\r\n$/);
    expect(echoed).toBe(0);
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
    clients.push(socket);
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

describe.each(['cleartext', 'TLS'] as const)('%s HTTP/2: a request body must arrive within the receive timeout', (kind) => {
  // An HTTP/2 session idle for the keep-alive timeout takes no new streams: not within these tests.
  const h2Bounds = { ...bounds, keepAliveTimeoutMs: 5000, lingerMs: 200 };

  it('a trickled body is answered 408 REQUEST_TIMEOUT; a long answer on the same session is not cut, and the session goes on', async () => {
    const server = await listening(kind === 'TLS', h2Bounds);
    const session = h2Session(server);
    try {
      const followed = h2Request(session, { ':method': 'GET', ':path': '/follow' });
      const answer = await h2Request(session, trickledPut, true);
      expect(answer).toMatchObject({ status: 408, requestId: expect.any(String) });
      expect(JSON.parse(answer.text)).toEqual(timedOut);
      expect(answer.ms).toBeGreaterThanOrEqual(550);
      expect(answer.ms).toBeLessThan(2000);
      expect(await followed).toMatchObject({ status: 200, text: 'a\nb\n' });
      expect(await h2Request(session, { ':method': 'GET', ':path': '/ping' })).toMatchObject({ status: 200, text: '{"pong":true}' });
      expect(echoed).toBe(0);
    } finally {
      session.close();
    }
  });

  it('a trickled body held behind a slow check is answered 408 at the receive timeout, and the route never runs', async () => {
    const server = await listening(kind === 'TLS', h2Bounds);
    const session = h2Session(server);
    try {
      const answer = await h2Request(session, { ...trickledPut, 'x-slow': '1000' }, true);
      expect(answer.status).toBe(408);
      expect(JSON.parse(answer.text)).toEqual(timedOut);
      expect(answer.ms).toBeLessThan(1000);
      // The check ends, and then a later request on the session is answered: by then fastify has gone on from the
      // check (in this process, several turns of the event loop ago) without running the route.
      await slowCheckDone;
      expect(await h2Request(session, { ':method': 'GET', ':path': '/ping' })).toMatchObject({ status: 200 });
      expect(echoed).toBe(0);
    } finally {
      session.close();
    }
  });
});

describe('the connection cap: an idle connection makes way for a new client', () => {
  // Timeouts far off: no connection closes by itself within a test.
  const capped = { headersTimeoutMs: 5000, receiveTimeoutMs: 5000, keepAliveTimeoutMs: 5000, timeoutCheckIntervalMs: 50, evictableIdleMsMin: 150 };

  it.each(['cleartext', 'TLS'] as const)('%s: at the cap, the connection idle longest is closed for a new one; one with a request under way or a long answer never is', async (kind) => {
    const server = await listening(kind === 'TLS', { ...capped, connectionsMax: 4, connectionsPerAddressMax: 4 });
    // Idle after its handshake, idle after an answer (keep-alive), a body still coming, and an HTTP/2 long answer.
    const silent = await h1Socket(server);
    silent.on('error', () => undefined);
    const answered = await ping(server);
    if (answered === 'refused') throw new Error('refused under the cap');
    const busy = await busyPut(server);
    const session = h2Session(server);
    let following = false;
    const followed = h2Request(session, { ':method': 'GET', ':path': '/follow?ms=1500' }, false, () => (following = true));
    await waitFor('the long answer under way', () => following);
    await sleep(200);
    // Each new client takes the place of the connection idle longest.
    const first = await ping(server);
    expect(first).toMatchObject({ status: 200 });
    await waitFor('the silent connection closed', () => silent.closed);
    expect(answered.socket.closed).toBe(false);
    const second = await ping(server);
    expect(second).toMatchObject({ status: 200 });
    await waitFor('the keep-alive connection closed', () => answered.socket.closed);
    // The two left are busy, and the two new ones only just idle: a third new client is refused.
    expect(await ping(server)).toBe('refused');
    await sleep(200);
    expect(await ping(server)).toMatchObject({ status: 200 });
    expect(busy.closed).toBe(false);
    expect(await followed).toMatchObject({ status: 200, text: 'a\nb\n' });
    session.close();
    busy.destroy();
  });

  it('one address past its own cap gives up its own idle connection, or is refused when all are busy; another address is served', async () => {
    const server = await listening(false, { ...capped, connectionsMax: 10, connectionsPerAddressMax: 2 });
    const busy = [await busyPut(server), await busyPut(server)];
    expect(await ping(server)).toBe('refused');
    const other = await ping(server, '127.0.0.2');
    if (other === 'refused') throw new Error('another address refused');
    expect(other.status).toBe(200);
    await sleep(200);
    expect(await ping(server, '127.0.0.2')).toMatchObject({ status: 200 });
    expect(other.socket.closed).toBe(false);
    await sleep(200);
    expect(await ping(server, '127.0.0.2')).toMatchObject({ status: 200 });
    await waitFor("the other address's connection idle longest closed", () => other.socket.closed);
    for (const socket of busy) expect(socket.closed).toBe(false);
    for (const socket of busy) socket.destroy();
  });

  it('counts a client by its IPv4 address, or its IPv6 /64', () => {
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey(undefined)).toBe('');
  });
});
