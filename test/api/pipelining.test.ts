// HTTP/1.1 pipelining cannot make a manager hold answers without bound: a connection's requests take turns, the
// next waiting while the client leaves more than unreadBytesMax of answers unread (cut off after unreadWaitMs), and
// one with more than limits.http1PipelinedMax requests waiting is closed; a client that reads gets every answer.
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';
import { limits } from '../../src/lib/limits.js';
import { RawSockets } from '../support/raw-sockets.js';
import { waitFor } from '../support/wait.js';

let app: FastifyInstance | null = null;
const sockets = new RawSockets();
afterEach(async () => {
  sockets.destroyAll();
  await app?.close();
  app = null;
});

const pageBytes = 512 * 1024;

/** How many /page answers were made. */
let pagesMade = 0;
/** The server's end of the last connection a request came on. */
let serverSide: Socket | null = null;

async function listening(): Promise<number> {
  app = buildBaseApp({ server: { unreadBytesMax: 1024 * 1024, unreadWaitMs: 500 } });
  const page = 'x'.repeat(pageBytes);
  pagesMade = 0;
  app.addHook('onRequest', (req, _reply, done) => {
    serverSide = req.raw.socket;
    done();
  });
  app.get('/page', async () => {
    pagesMade++;
    return { page };
  });
  app.get('/ping', async () => ({ pong: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

const open = (port: number): Promise<Socket> => sockets.open(port);

const request = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`;
const closed = (s: Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('HTTP/1.1 pipelining', () => {
  it('a client that reads gets every pipelined answer, in order', async () => {
    const s = await open(await listening());
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.write(request('/ping').repeat(10));
    await new Promise<void>((resolve) => {
      const check = (): void => ((text.match(/\{"pong":true\}/g) ?? []).length === 10 ? resolve() : void setTimeout(check, 10));
      check();
    });
    expect(s.destroyed).toBe(false);
  });

  it(`more than ${limits.http1PipelinedMax} requests in flight on one connection close it`, async () => {
    const s = await open(await listening());
    s.on('data', () => undefined);
    s.write(request('/ping').repeat(limits.http1PipelinedMax + 20));
    await closed(s);
  });

  it('a client that sends more while leaving answers unread gets no more made, and is cut off; others are served', async () => {
    const port = await listening();
    const s = await open(port);
    s.pause();
    const sent = limits.http1PipelinedMax;
    s.write(request('/page').repeat(sent));
    await waitFor('the server to cut the connection off', () => serverSide?.destroyed === true, 10_000);
    // What the kernel's buffers took, then one more past the bound: far from all of them.
    expect(pagesMade).toBeLessThan(sent);
    s.resume();
    await closed(s);
    const other = await open(port);
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      other.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('{"pong":true}')) resolve(text);
      });
      other.write(request('/ping'));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
  });
});
