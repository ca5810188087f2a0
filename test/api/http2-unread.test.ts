// An HTTP/2 client that opens many streams and never reads its answers is closed once they pass its connection's
// bound, or every connection's together, as an HTTP/1.1 connection with unread answers is; other clients are answered
// meanwhile, and the server advertises how many streams one connection may have open.
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';
import { limits } from '../../src/lib/limits.js';
import { waitFor } from '../support/wait.js';

let app: FastifyInstance | null = null;
const sessions: ClientHttp2Session[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  await app?.close();
  app = null;
});

const pageBytes = 1024 * 1024;

async function listening(server: Record<string, number>): Promise<string> {
  app = buildBaseApp({ server });
  const page = 'x'.repeat(pageBytes);
  app.get('/page', async () => ({ page }));
  app.get('/ping', async () => ({ pong: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

function session(url: string): Promise<ClientHttp2Session> {
  const s = h2Connect(url);
  sessions.push(s);
  s.on('error', () => {});
  return new Promise((resolve) => s.once('remoteSettings', () => resolve(s)));
}

/** Opens `count` streams for a page each and never reads them; counts the answers begun. */
function neverRead(s: ClientHttp2Session, count: number): { answered: () => number } {
  let answered = 0;
  for (let i = 0; i < count; i++) {
    const stream = s.request({ ':method': 'GET', ':path': '/page' });
    stream.on('response', () => answered++);
    stream.on('error', () => {});
    stream.pause();
    stream.end();
  }
  return { answered: () => answered };
}

function ping(s: ClientHttp2Session): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':method': 'GET', ':path': '/ping' });
    let data = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (data += d));
    stream.on('end', () => resolve(JSON.parse(data)));
    stream.on('error', reject);
    stream.end();
  });
}

describe('HTTP/2 answers a client leaves unread', () => {
  it('advertises the bound on streams per connection', async () => {
    const url = await listening({});
    const s = await session(url);
    expect(s.remoteSettings.maxConcurrentStreams).toBe(limits.http2StreamsPerConnectionMax);
    expect(limits.http2StreamsPerConnectionMax).toBeLessThanOrEqual(100);
  });

  it('closes a session whose unsent answers pass its bound; another client is answered meanwhile', async () => {
    // Every connection's budget far above: only the session's own bound can close it.
    const url = await listening({ http2UnsentBytesMax: 4 * pageBytes, unreadAnswersBytesMax: 1024 * pageBytes });
    const greedy = neverRead(await session(url), 40);
    const other = await session(url);
    await waitFor('the greedy session closed', () => sessions[0]!.closed || sessions[0]!.destroyed, 3000);
    // Closed once its fifth page was written, not after all forty.
    expect(greedy.answered()).toBeLessThan(10);
    expect(await ping(other)).toEqual({ pong: true });
  });

  it("closes the session waiting longest once every connection's unsent answers pass the budget, without another write", async () => {
    // Each session under its own bound, the two together over the budget; every answer written in one burst.
    const url = await listening({ http2UnsentBytesMax: 8 * pageBytes, unreadAnswersBytesMax: 6 * pageBytes, unreadAnswerAgeMsMin: 50 });
    const first = neverRead(await session(url), 4);
    await waitFor('the first session has its answers', () => first.answered() === 4);
    const second = neverRead(await session(url), 4);
    await waitFor('the second session has its answers', () => second.answered() === 4);
    await waitFor('the first session closed', () => sessions[0]!.closed || sessions[0]!.destroyed, 3000);
    const other = await session(url);
    expect(await ping(other)).toEqual({ pong: true });
    // The rest fit: the second session stays open.
    expect(sessions[1]!.closed).toBe(false);
  });
});
