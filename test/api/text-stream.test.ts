// TextStreams: long text answers (followed logs) are bounded in number, cut rather than ended when their source fails
// or the node closes (a client must not take a cut answer for a complete one), and freed when the client goes away;
// a HEAD answers at once and takes no slot.
import { connect as http2Connect, constants as http2Constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';
import { TextStreams } from '../../src/api/text-stream.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { connect as netConnect } from 'node:net';
import type { StallBounds } from '../../src/api/stalled-reader.js';
import { head } from '../support/head.js';
import { freePortIn, sleep, waitFor } from '../support/wait.js';

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

/** An app whose /stream writes 'start', then what `rest` yields; at most one stream at once. */
async function listening(rest: (signal: AbortSignal) => AsyncGenerator<Uint8Array>, credentialHolds?: () => Promise<boolean>, stall?: StallBounds): Promise<string> {
  app = buildBaseApp({});
  // As the auth plugin sets it for a request a token let in.
  if (credentialHolds !== undefined) app.addHook('onRequest', async (req) => void (req.credentialHolds = credentialHolds));
  const streams = new TextStreams(app, 1, 'test streams', stall === undefined ? {} : { stall });
  app.get('/stream', async (_req, reply) => {
    const c = streams.begin(reply);
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('start\n');
      yield* rest(c.signal);
    }
    await streams.send(reply, c, chunks());
    return reply;
  });
  const host = stall === undefined ? '127.0.0.1' : '127.0.69.1';
  await app.listen({ host, port: stall === undefined ? 0 : await freePortIn(host, 20000, 29999) });
  return `http://${host}:${(app.server.address() as AddressInfo).port}`;
}

/** A source as fast as its reader takes it (a task printing tens of MB/s), until the stream is aborted. */
async function* flood(signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  while (!signal.aborted) yield chunk;
}

/** Opens /stream on a raw socket that reads `readBytesPerTick` every 20 ms (0: reads nothing at all); resolves once it closes. */
function reader(url: string, readBytesPerTick: number): { closed: Promise<void>; stop(): void } {
  const { hostname, port } = new URL(url);
  const socket = netConnect(Number(port), hostname);
  socket.on('error', () => undefined);
  socket.write(`GET /stream HTTP/1.1\r\nhost: x\r\n\r\n`);
  socket.pause();
  const ticker = setInterval(() => {
    for (let n = 0; n < readBytesPerTick; ) {
      const got = socket.read() as Buffer | null;
      if (got === null) break;
      n += got.length;
    }
  }, 20);
  // A paused socket that was closed by its server says so only once read to the end: the FIN is seen as 'end'.
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { closed, stop: () => (clearInterval(ticker), socket.destroy()) };
}

async function* forever(signal: AbortSignal): AsyncGenerator<Uint8Array> {
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  yield Buffer.from('never read\n');
}

async function readFirst(res: Response): Promise<{ first: string; rest: Promise<string> }> {
  const reader = res.body!.getReader();
  const first = Buffer.from((await reader.read()).value!).toString();
  const rest = (async () => {
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += Buffer.from(value).toString();
    }
  })();
  return { first, rest };
}

describe('TextStreams', () => {
  it('a stream past the limit is 429 QUEUE_FULL; once the first client goes away, a new one is served', async () => {
    const url = await listening(forever);
    const ac = new AbortController();
    const first = await fetch(`${url}/stream`, { signal: ac.signal });
    expect(first.status).toBe(200);
    const { first: text, rest } = await readFirst(first);
    expect(text).toBe('start\n');
    const ended = failureOf(rest);
    const second = await fetch(`${url}/stream`);
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('QUEUE_FULL');
    ac.abort();
    expect(await ended).toBeInstanceOf(Error);
    // The server sees the close and frees the slot.
    let third: Response | undefined;
    for (let i = 0; i < 250 && third?.status !== 200; i++) {
      await sleep(20);
      third = await fetch(`${url}/stream`);
      if (third.status !== 200) await third.arrayBuffer();
    }
    expect(third?.status).toBe(200);
    void third?.body?.cancel();
  });

  it('a source that fails part-way cuts the answer: the client sees an error, not a short complete answer', async () => {
    const url = await listening(async function* () {
      await sleep(50);
      if (Date.now() > 0) throw new Error('the worker went away');
      yield Buffer.from('never\n');
    });
    const { first, rest } = await readFirst(await fetch(`${url}/stream`));
    expect(first).toBe('start\n');
    expect(await failureOf(rest)).toBeInstanceOf(Error);
  });

  it('a stream whose token no longer holds (revoked, expired) is cut within about a second, and its slot freed', async () => {
    const credential = { holds: true, checks: 0 };
    const url = await listening(forever, async () => {
      credential.checks++;
      return credential.holds;
    });
    const { rest } = await readFirst(await fetch(`${url}/stream`));
    let cut = false;
    void rest.then(() => (cut = true), () => (cut = true));
    // While the token holds, a check leaves the stream alone: once one has answered (the server is in this process, so
    // its answer is acted on before the next request is read), the stream still holds the only slot.
    await waitFor('a credential check while the token holds', () => credential.checks >= 1, limits.longAnswerCredentialCheckMs * 3);
    const meanwhile = await fetch(`${url}/stream`);
    expect(meanwhile.status).toBe(429);
    await meanwhile.arrayBuffer();
    expect(cut).toBe(false);
    credential.holds = false;
    const checksBeforeRevoke = credential.checks;
    const revokedAtMs = Date.now();
    expect(await failureOf(rest)).toBeInstanceOf(Error);
    expect(Date.now() - revokedAtMs).toBeLessThan(limits.longAnswerCredentialCheckMs * 2 + 1000);
    // Cut by the first check after the revoke, and checked no more.
    expect(credential.checks).toBe(checksBeforeRevoke + 1);
    credential.holds = true;
    const again = await fetch(`${url}/stream`);
    expect(again.status).toBe(200);
    void again.body?.cancel();
  });

  it('over HTTP/2 a cut resets the stream with an error code, so the reader tells it from an end', async () => {
    const credential = { holds: true };
    const url = await listening(forever, async () => credential.holds);
    const session = http2Connect(url);
    try {
      const stream = session.request({ ':path': '/stream' });
      const closed = new Promise((resolve) => stream.on('close', resolve));
      stream.on('error', () => undefined); // the reset, as an error: what this test wants to see
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (text += d));
      await waitFor('the first line', () => text === 'start\n');
      credential.holds = false;
      await closed;
      expect(stream.rstCode).toBe(http2Constants.NGHTTP2_INTERNAL_ERROR);
    } finally {
      session.close();
    }
  });

  it("the node's close cuts an open stream at once", async () => {
    const url = await listening(forever);
    const { rest } = await readFirst(await fetch(`${url}/stream`));
    const started = Date.now();
    await app!.close();
    app = null;
    expect(await failureOf(rest)).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it.each(['HTTP/1.1', 'HTTP/2'])('%s: a HEAD answers the headers at once and takes no slot; an unknown source answers its error as for a GET', async (version) => {
    app = buildBaseApp({});
    const streams = new TextStreams(app, 1, 'test streams');
    const sources = { opened: 0, closed: 0 };
    app.get<{ Querystring: { missing?: string } }>('/served', { config: { anyQuery: true } }, async (req, reply) =>
      streams.serve(reply, async (signal) => {
        if (req.query.missing !== undefined) throw new MinkubeError('TASK_NOT_FOUND');
        sources.opened++;
        signal.addEventListener('abort', () => sources.closed++, { once: true });
        return forever(signal);
      }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const http2 = version === 'HTTP/2';
    // More HEADs than slots: each answers at once (head() fails after 2 s), and none holds one.
    for (let i = 0; i < 3; i++) {
      const answer = await head(url, '/served', { http2 });
      expect(answer).toMatchObject({ status: 200, bodyBytes: 0, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
      expect(answer.headers['content-length']).toBeUndefined();
    }
    expect(sources).toEqual({ opened: 3, closed: 3 });
    expect(await head(url, '/served?missing=1', { http2 })).toMatchObject({ status: 404 });
    const ac = new AbortController();
    const get = await fetch(`${url}/served`, { signal: ac.signal });
    expect(get.status).toBe(200);
    // Full now: a HEAD answers what a GET would.
    expect(await head(url, '/served', { http2 })).toMatchObject({ status: 429 });
    ac.abort();
  });

  it('a reader that stops reading is cut once its unsent bytes have waited the stall bound, and its slot is freed', async () => {
    const url = await listening(flood, undefined, { stallMsMax: 400, checkMs: 50 });
    const stopped = reader(url, 0);
    await waitFor('the slot taken', async () => {
      const r = await fetch(`${url}/stream`);
      await r.body?.cancel();
      return r.status === 429;
    });
    // Cut, not ended: the server closes the connection; the next reader gets the slot.
    await waitFor('the slot freed', async () => {
      const r = await fetch(`${url}/stream`, { signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
      return r.status === 200;
    }, 5000);
    stopped.stop();
  });

  it('a slow reader that keeps taking some of it is not cut', async () => {
    // The kernel wakes a writer only once a good part of its socket's send buffer (megabytes) is free: at 12 MB/s
    // the answer's own bytes leave every few hundred ms, well within the bound.
    const url = await listening(flood, undefined, { stallMsMax: 1000, checkMs: 50 });
    const slow = reader(url, 256 * 1024);
    let closed = false;
    void slow.closed.then(() => (closed = true));
    await sleep(3000); // three stall bounds
    expect(closed).toBe(false);
    const r = await fetch(`${url}/stream`);
    await r.body?.cancel();
    expect(r.status).toBe(429);
    slow.stop();
  });

  it('a source that ends ends the answer', async () => {
    const url = await listening(async function* () {
      yield Buffer.from('end\n');
    });
    expect(await (await fetch(`${url}/stream`)).text()).toBe('start\nend\n');
  });
});

/** What the promise rejects with; null if it resolves. */
function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => null, (err: unknown) => err);
}
