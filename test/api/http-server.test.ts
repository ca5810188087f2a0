// What Node's HTTP server refuses before fastify sees a request, over raw sockets: a malformed request line, too many
// or too large headers, a client that stalls in its headers. Each answers the usual { error: { code, message } }.
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';

let app: FastifyInstance;
let port = 0;

beforeAll(async () => {
  app = buildBaseApp({ server: { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 100, headerBytesMax: 4096, headersCountMax: 50 } });
  app.get('/ping', async () => ({ pong: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});
afterAll(() => app.close());

interface RawAnswer {
  status: number;
  body: unknown;
  /** Whether the server closed the connection. */
  closed: boolean;
  ms: number;
}

/** Writes `text` and sends nothing more (a stalling client, if the text is unfinished); collects the answer until the close. */
function raw(text: string): Promise<RawAnswer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after 5 s; got ${JSON.stringify(data)}`));
    }, 5000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(guard);
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, body: body === '' ? null : JSON.parse(body), closed: true, ms: Date.now() - started });
    });
    socket.write(text);
  });
}

const errorOf = (code: string) => ({ error: { code, message: expect.any(String) } });

describe('the HTTP server refuses bad and slow clients in the JSON error shape', () => {
  it('serves a good request (the baseline)', async () => {
    const r = await raw('GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(r).toMatchObject({ status: 200, body: { pong: true } });
  });

  it('a malformed request line is 400 BAD_REQUEST', async () => {
    const r = await raw('GARBAGE\x01 / NOT-HTTP\r\n\r\n');
    expect(r).toMatchObject({ status: 400, body: errorOf('BAD_REQUEST'), closed: true });
  });

  it('a malformed header is 400 BAD_REQUEST', async () => {
    const r = await raw('GET /ping HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n');
    expect(r).toMatchObject({ status: 400, body: errorOf('BAD_REQUEST') });
  });

  it('200 headers are 431 HEADERS_TOO_LARGE', async () => {
    const headers = Array.from({ length: 200 }, (_, i) => `x-h${i}: ${i}\r\n`).join('');
    const r = await raw(`GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`);
    expect(r).toMatchObject({ status: 431, body: errorOf('HEADERS_TOO_LARGE') });
  });

  it('headers past the byte bound are 431 HEADERS_TOO_LARGE from the parser', async () => {
    const r = await raw(`GET /ping HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`);
    expect(r).toMatchObject({ status: 431, body: errorOf('HEADERS_TOO_LARGE'), closed: true });
  });

  it('a client that sends half a header and stalls is cut off with 408 REQUEST_TIMEOUT', async () => {
    const r = await raw('GET /ping HTTP/1.1\r\nHost: x\r\nx-half: hal');
    expect(r).toMatchObject({ status: 408, body: errorOf('REQUEST_TIMEOUT'), closed: true });
    expect(r.ms).toBeLessThan(2000);
  });

  it('a client that stalls in its body is cut off too', async () => {
    const r = await raw('POST /ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(2500);
  });
});
