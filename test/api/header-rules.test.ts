// Headers a request may carry once, and the Host an HTTP/1.1 request must carry (RFC 9112 3.2), refused with 400
// BAD_REQUEST in the JSON shape on every kind of port: node kept the first of two Authorization, Content-Type or Host
// headers and went on, and answered a missing Host with an empty 400 in cleartext while its TLS server served it.
import { connect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBaseApp, type HttpsOptions } from '../../src/api/http.js';
import { tlsServerOptions } from '../support/tls-server.js';
import { readAll } from '../support/raw-sockets.js';
import { waitFor } from '../support/wait.js';

const host = '127.0.61.2';
const errorOf = (code: string) => ({ error: { code, message: expect.any(String) } });

let puts = 0;
async function listening(https?: HttpsOptions): Promise<{ app: FastifyInstance; port: number }> {
  const app = buildBaseApp(https === undefined ? {} : { https });
  app.get('/health', async () => ({ ok: true }));
  app.put('/item', async (req) => ({ put: ++puts, body: req.body }));
  await app.listen({ host, port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port };
}

/** Writes `text` on a new connection (TLS when `tls`) and reads until the server closes it; the status and JSON body. */
async function once(port: number, text: string, tls = false): Promise<{ status: number; body: unknown }> {
  const socket: Socket = tls ? tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : connect(port, host);
  const reading = readAll(socket);
  try {
    socket.write(text);
    await waitFor(`the close (got ${JSON.stringify(reading.data())})`, reading.closed, 15_000);
  } finally {
    socket.destroy();
  }
  const data = reading.data();
  const end = data.indexOf('\r\n\r\n');
  const body = data.slice(end + 4);
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0), body: body === '' ? null : JSON.parse(body) };
}

/** An HPACK literal header field without indexing, new name, no Huffman (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/**
 * One h2c request by prior knowledge with `headers` exactly as given (node's client refuses to send a single-value
 * header twice); the body of its answer's DATA frames.
 */
async function h2cRaw(port: number, headers: [string, string][]): Promise<string> {
  const socket = connect(port, host);
  let data = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
  socket.on('error', () => undefined);
  const block = Buffer.concat(headers.map(([n, v]) => literal(n, v)));
  // SETTINGS (empty), then HEADERS with END_HEADERS | END_STREAM on stream 1.
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 5, 1, block)]));
  const bodyOf = (): string | false => {
    let body = '';
    for (let off = 0; off + 9 <= data.length; ) {
      const length = data.readUIntBE(off, 3);
      if (off + 9 + length > data.length) return false;
      if (data[off + 3] === 0 && data.readUInt32BE(off + 5) === 1) {
        body += data.subarray(off + 9, off + 9 + length).toString('utf8');
        if ((data[off + 4]! & 1) === 1) return body;
      }
      off += 9 + length;
    }
    return false;
  };
  try {
    return await waitFor('the answer on stream 1', bodyOf, 15_000);
  } finally {
    socket.destroy();
  }
}

describe('a cleartext port', () => {
  let app: FastifyInstance;
  let port = 0;
  beforeAll(async () => ({ app, port } = await listening()));
  afterAll(() => app.close());

  it('an HTTP/1.1 request without Host is 400 BAD_REQUEST saying so; HTTP/1.0 needs none', async () => {
    const r = await once(port, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(r).toEqual({ status: 400, body: errorOf('BAD_REQUEST') });
    expect(JSON.stringify(r.body)).toContain('Host');
    expect(await once(port, 'GET /health HTTP/1.0\r\n\r\n')).toEqual({ status: 200, body: { ok: true } });
  });

  it('Host, Authorization, Content-Type or Content-Length given twice is 400 BAD_REQUEST naming it; nothing is done', async () => {
    const before = puts;
    const put = (extra: string): string => `PUT /item HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n${extra}Connection: close\r\n\r\n{}`;
    for (const [name, text] of [
      ['Host', 'GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n'],
      ['Authorization', 'GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\nConnection: close\r\n\r\n'],
      ['Content-Type', put('Content-Type: text/plain\r\n')],
      ['Content-Length', put('Content-Length: 2\r\n')],
    ] as const) {
      const r = await once(port, text);
      expect(r, name).toEqual({ status: 400, body: errorOf('BAD_REQUEST') });
      if (name !== 'Content-Length') expect(JSON.stringify(r.body), name).toContain(`the header ${name} is given more than once`);
    }
    expect(puts).toBe(before);
    // Once each is fine.
    expect((await once(port, put(''))).status).toBe(200);
  });

  it('after such a 400 the connection is closed: a request behind it is not carried out (outside re-test)', async () => {
    const before = puts;
    const put = 'PUT /item HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
    for (const bad of ['GET /health HTTP/1.1\r\n\r\n', 'GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n']) {
      const r = await once(port, bad + put);
      expect(r).toEqual({ status: 400, body: errorOf('BAD_REQUEST') });
    }
    expect(puts).toBe(before);
  });

  it('over h2c, Authorization or Content-Type given twice is 400 BAD_REQUEST too', async () => {
    const base: [string, string][] = [[':method', 'GET'], [':path', '/health'], [':scheme', 'http'], [':authority', 'x']];
    const auth = await h2cRaw(port, [...base, ['authorization', 'Bearer a'], ['authorization', 'Bearer b']]);
    expect(JSON.parse(auth)).toEqual({ error: { code: 'BAD_REQUEST', message: 'the header Authorization is given more than once; send it once' } });
    const type = await h2cRaw(port, [...base, ['content-type', 'application/json'], ['content-type', 'text/plain']]);
    expect(JSON.parse(type)).toMatchObject({ error: { code: 'BAD_REQUEST', message: expect.stringContaining('Content-Type') } });
    // Without Host or a repeat, h2c serves it (HTTP/2 carries :authority instead).
    expect(JSON.parse(await h2cRaw(port, base))).toEqual({ ok: true });
  });
});

describe('a TLS port answers as the cleartext one', () => {
  let app: FastifyInstance;
  let port = 0;
  beforeAll(async () => ({ app, port } = await listening(await tlsServerOptions())));
  afterAll(() => app.close());

  it('an HTTP/1.1 request without Host is 400 BAD_REQUEST (it was served)', async () => {
    expect(await once(port, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n', true)).toEqual({ status: 400, body: errorOf('BAD_REQUEST') });
    expect(await once(port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', true)).toEqual({ status: 200, body: { ok: true } });
  });

  it('two Authorization headers are 400 BAD_REQUEST', async () => {
    const r = await once(port, 'GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\nConnection: close\r\n\r\n', true);
    expect(r).toEqual({ status: 400, body: errorOf('BAD_REQUEST') });
  });
});
