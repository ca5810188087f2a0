// HttpClient against local servers: answers, error bodies, timeouts, refusals, lost connections, a token never sent
// over plain HTTP; and over mutual TLS with a throwaway CA made by openssl: a trusted server works and sees our
// certificate and the bearer token, an untrusted or misnamed one is UNREACHABLE naming TLS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/client/api-client.js';
import { HttpClient, neverSent, normaliseBaseUrl, type TlsMaterial } from '../../src/client/http.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { httpChunkPoster } from '../../src/manager/snapshot-transfer.js';
import { blackhole } from '../support/blackhole.js';
import { rejection } from '../support/errors.js';

async function listen(server: Server | HttpsServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function close(server: Server | HttpsServer): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

// Both pools (undici's for the daemons, node's for the CLI) behave the same to callers.
describe.each(['undici', 'node'] as const)('HttpClient (%s pool) over plain HTTP', (pool) => {
  const seen: { method: string; url: string; authorization: string | undefined; body: string }[] = [];
  // Routes by path: /json answers JSON, /missing an error body, /html a non-JSON error, /silent never, /drop cuts.
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body });
      const path = (req.url ?? '').replace(/^\/prefix/, '').replace(/\?.*$/, '');
      if (path === '/json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, body }));
      else if (path === '/missing') res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(new MinkubeError('KV_KEY_NOT_FOUND', 'no key "k"').toBody()));
      else if (path === '/html') res.writeHead(502).end('<html>bad gateway</html>');
      else if (path === '/drop') req.socket.destroy();
      else if (path === '/bytes') res.writeHead(200).end(Buffer.from([0, 1, 2, 255]));
      else if (path === '/slow-stream') {
        // Headers at once, then a chunk every 700 ms, three of them: longer than the client's 2 s deadline.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.flushHeaders();
        let n = 0;
        const t = setInterval(() => {
          res.write(`chunk ${++n}\n`);
          if (n === 3) {
            clearInterval(t);
            res.end();
          }
        }, 700);
        res.once('close', () => clearInterval(t));
      } else if (path === '/cut-stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        setTimeout(() => req.socket.destroy(), 100);
      } else if (path === '/endless-stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('start\n');
      }
      // /silent: no answer.
    });
  });
  let base = '';
  const http = new HttpClient({ timeoutMs: 2000, pool });

  beforeAll(async () => {
    base = `http://127.0.0.1:${await listen(server)}`;
  });
  afterAll(async () => {
    await http.close();
    await close(server);
  });

  it('answers status, headers and text; sends the body', async () => {
    const res = await http.request({ method: 'POST', url: base, path: '/json', body: 'hello' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.text)).toEqual({ ok: true, body: 'hello' });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/json', authorization: undefined });
  });

  it("never sends a token over plain HTTP: the client's, a request's own Authorization header, an ApiClient's: HTTPS_REQUIRED, and nothing reaches the server", async () => {
    // A plain TCP listener: it would see any byte of any request, an insecure server or anyone on the path alike.
    const received: string[] = [];
    const listener = createNetServer((socket) => {
      socket.on('data', (d: Buffer) => received.push(d.toString('latin1')));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.62.3', r));
    const url = `http://127.0.62.3:${(listener.address() as AddressInfo).port}`;
    const withToken = new HttpClient({ token: 'tok-1', timeoutMs: 1000, pool });
    const refused = { code: 'HTTPS_REQUIRED', message: `GET ${url}/json: a token is sent only over TLS, never over plain HTTP: nothing was sent; use ${url.replace('http:', 'https:')}/json` };
    try {
      expect(await rejection(withToken.request({ method: 'GET', url, path: '/json' }))).toMatchObject(refused);
      expect(await rejection(withToken.stream({ method: 'GET', url, path: '/json' }))).toMatchObject(refused);
      expect(await rejection(http.requestBytes({ method: 'GET', url, path: '/json', headers: { Authorization: 'Bearer own' } }))).toMatchObject(refused);
      expect(await rejection(new ApiClient(url, { http, token: 'api-tok' }).request('GET', '/json'))).toMatchObject({ code: 'HTTPS_REQUIRED' });
      expect(await rejection(new ApiClient(url.replace('http:', 'HTTP:'), { http: withToken, readRetries: 2 }).kvGet('a'))).toMatchObject({ code: 'HTTPS_REQUIRED' });
      // Without a token the same listener gets the request: the refusal is about the token, not plain HTTP.
      await rejection(http.request({ method: 'GET', url, path: '/json', timeoutMs: 300 }));
      expect(received.join('')).toMatch(/^GET \/json HTTP\/1\.1\r\n/);
      expect(received.join('')).not.toMatch(/authorization/i);
    } finally {
      await withToken.close();
      await new Promise((r) => listener.close(r));
    }
  });

  it('appends the path to a base URL with a prefix, query included', async () => {
    await http.request({ method: 'GET', url: normaliseBaseUrl(`${base}/prefix/`), path: '/json?x=1' });
    expect(seen.at(-1)!.url).toBe('/prefix/json?x=1');
  });

  it('answers bytes as sent', async () => {
    const res = await http.requestBytes({ method: 'GET', url: base, path: '/bytes' });
    expect([...res.bytes]).toEqual([0, 1, 2, 255]);
  });

  it('requestOk turns an error body into its MinkubeError, and anything else into UNREACHABLE naming the request and the status', async () => {
    expect(await rejection(http.requestOk({ method: 'GET', url: base, path: '/missing' }))).toMatchObject({ code: 'KV_KEY_NOT_FOUND', status: 404, message: 'no key "k"' });
    // No Minkube node answered (a proxy's page, a plain web server's 404 or 501): not INTERNAL, nor INVALID_BODY.
    expect(await rejection(http.requestOk({ method: 'GET', url: base, path: '/html' }))).toMatchObject({
      code: 'UNREACHABLE',
      message: `GET ${base}/html did not answer as a Minkube manager's API does (HTTP 502, with no Minkube error in its body)`,
    });
    expect(await rejection(http.requestOk({ method: 'GET', url: base, path: '/html', server: { role: 'worker', id: 'w1' } }))).toMatchObject({
      code: 'UNREACHABLE',
      message: `GET ${base}/html did not answer as a Minkube worker's API does (HTTP 502, with no Minkube error in its body)`,
    });
    // request() answers any status.
    expect((await http.request({ method: 'GET', url: base, path: '/missing' })).status).toBe(404);
  });

  it('no answer in time is TIMEOUT naming the URL, its outcome unknown', async () => {
    const e = await rejection(http.request({ method: 'PUT', url: base, path: '/silent', timeoutMs: 100 }));
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toBe(`PUT ${base}/silent: no answer within 100 ms; the outcome is unknown`);
  });

  it('a timeout that is a fraction of a ms (a deadline less a monotonic reading) is said in whole ms (outside tester)', async () => {
    const e = await rejection(http.request({ method: 'DELETE', url: base, path: '/silent', timeoutMs: 99.553007 }));
    expect(e.message).toBe(`DELETE ${base}/silent: no answer within 100 ms; the outcome is unknown`);
    // The client's own timeout carries a cause, as every failure met on the way does: a server's TIMEOUT has none.
    expect(e.cause).toBeInstanceOf(Error);
  });

  it('a refused connection is UNREACHABLE, and a write refused so was surely not sent', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const e = await rejection(http.request({ method: 'POST', url, path: '/json', body: 'x' }));
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toBe(`cannot reach ${url}/json (ECONNREFUSED)`);
  });

  it('a connection lost midway is UNREACHABLE; for a write the outcome is unknown, for a GET it is not said', async () => {
    const post = await rejection(http.request({ method: 'POST', url: base, path: '/drop', body: 'x' }));
    expect(post.code).toBe('UNREACHABLE');
    expect(post.message).toBe(`cannot reach ${base}/drop (other side closed); the outcome is unknown`);
    const get = await rejection(http.request({ method: 'GET', url: base, path: '/drop' }));
    expect(get.message).not.toContain('outcome');
  });

  it("the caller's abort rejects with its MinkubeError reason, else UNREACHABLE 'abandoned'", async () => {
    const mine = new AbortController();
    const p = http.request({ method: 'POST', url: base, path: '/silent', signal: mine.signal });
    mine.abort(new MinkubeError('WORKER_UNAVAILABLE', 'stepped down'));
    expect(await rejection(p)).toMatchObject({ code: 'WORKER_UNAVAILABLE', message: 'stepped down' });
    const e = await rejection(http.request({ method: 'GET', url: base, path: '/silent', signal: AbortSignal.abort() }));
    expect(e).toMatchObject({ code: 'UNREACHABLE', message: `GET ${base}/silent: abandoned` });
  });

  it('stream: the deadline covers the headers only; the body comes as it is written', async () => {
    const started = performance.now();
    const res = await http.stream({ method: 'GET', url: base, path: '/slow-stream' });
    expect(res.status).toBe(200);
    const parts: string[] = [];
    for await (const chunk of res.body) parts.push(Buffer.from(chunk).toString());
    expect(parts.join('')).toBe('chunk 1\nchunk 2\nchunk 3\n');
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(performance.now() - started).toBeGreaterThan(2000);
  });

  it('stream: an error answer throws its MinkubeError; a body cut part-way is UNREACHABLE saying so', async () => {
    expect(await rejection(http.stream({ method: 'GET', url: base, path: '/missing' }))).toMatchObject({ code: 'KV_KEY_NOT_FOUND' });
    const res = await http.stream({ method: 'GET', url: base, path: '/cut-stream' });
    let text = '';
    const err = await rejection((async () => {
      for await (const chunk of res.body) text += Buffer.from(chunk).toString();
    })());
    expect(text).toBe('first\n');
    expect(err).toMatchObject({ code: 'UNREACHABLE' });
    expect((err as MinkubeError).message).toContain('cut off part-way');
  });

  it("stream: the caller's abort ends a body that never ends, with the abort's error", async () => {
    const ac = new AbortController();
    const res = await http.stream({ method: 'GET', url: base, path: '/endless-stream', signal: ac.signal });
    const it = res.body[Symbol.asyncIterator]();
    expect(Buffer.from((await it.next()).value as Uint8Array).toString()).toBe('start\n');
    const next = it.next();
    ac.abort(new MinkubeError('TIMEOUT', 'enough'));
    expect(await rejection(next)).toMatchObject({ code: 'TIMEOUT', message: 'enough' });
  });

  it('an ApiClient sharing the pool sends through it', async () => {
    await new ApiClient(base, { http }).request('GET', '/json?via=api-client');
    expect(seen.at(-1)!.url).toBe('/json?via=api-client');
  });

  it('the snapshot chunk poster posts the bytes and answers the reply; a refusal is its MinkubeError', async () => {
    const header = { from: nodeId('m1'), term: term(2), meta: { index: logIndex(5), term: term(1), voters: [nodeId('m1')], learners: [] }, sizeBytes: 3, crc32: 7, offset: 0 };
    const chunks = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const size = Buffer.concat(parts).length;
        if (req.headers['content-type'] !== 'application/octet-stream') res.writeHead(415).end(JSON.stringify(new MinkubeError('UNSUPPORTED_MEDIA_TYPE').toBody()));
        else if (size === 0) res.writeHead(400).end(JSON.stringify(new MinkubeError('INVALID_BODY', 'empty').toBody()));
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ offset: size, done: true }));
      });
    });
    const port = await listen(chunks);
    try {
      const post = httpChunkPoster(http);
      expect(await post(`127.0.0.1:${port}`, header, new Uint8Array([1, 2, 3]), 1000, 'm2')).toEqual({ offset: 3, done: true });
      expect(await rejection(post(`127.0.0.1:${port}`, header, new Uint8Array(0), 1000, 'm2'))).toMatchObject({ code: 'INVALID_BODY', message: 'empty' });
    } finally {
      await close(chunks);
    }
  });

  it('a host that drops the connection attempt: the request ends at its own deadline, and the CLI pool says never sent', async () => {
    const hole = await blackhole();
    try {
      const url = `http://127.0.0.1:${hole.port}`;
      // undici leaves a connecting request alone until its connect timeout (10 s by default): the deadline still holds.
      let started = performance.now();
      const e = await rejection(http.request({ method: 'PUT', url, path: '/json', body: 'x', timeoutMs: 400 }));
      expect(e).toMatchObject({ code: 'TIMEOUT' });
      expect(performance.now() - started).toBeLessThan(1500);
      // The CLI's pool gives a TCP connect 1.5 s (limits.httpConnectTimeoutMsDefault), then the write was surely not sent.
      const cli = new HttpClient({ pool, connectTimeoutMs: 300, timeoutMs: 2000 });
      try {
        started = performance.now();
        const unsent = await rejection(cli.request({ method: 'PUT', url, path: '/json', body: 'x' }));
        expect(performance.now() - started).toBeLessThan(1500);
        expect(unsent.code).toBe('UNREACHABLE');
        expect(unsent.message).not.toMatch(/outcome is unknown/);
        expect(neverSent(unsent)).toBe(true);
      } finally {
        await cli.close();
      }
    } finally {
      hole.close();
    }
  });

  it('dials from localAddress when given one', async () => {
    const from = new HttpClient({ pool, localAddress: '127.0.0.2' });
    try {
      const seenFrom: string[] = [];
      const probe = createServer((req, res) => {
        seenFrom.push(req.socket.remoteAddress ?? '');
        res.end('{}');
      });
      const port = await listen(probe);
      try {
        await from.requestOk({ method: 'GET', url: `http://127.0.0.1:${port}`, path: '/' });
        expect(seenFrom).toEqual(['127.0.0.2']);
      } finally {
        await close(probe);
      }
    } finally {
      await from.close();
    }
  });

  it('a client closed before its first request refuses every request: UNREACHABLE', async () => {
    const closed = new HttpClient({ pool });
    await closed.close();
    expect(await rejection(closed.request({ method: 'GET', url: base, path: '/json' }))).toMatchObject({ code: 'UNREACHABLE' });
  });

  it("normalises base URLs: 'host:port' is https when TLS material is configured", () => {
    expect(normaliseBaseUrl('127.0.0.1:8001')).toBe('http://127.0.0.1:8001');
    expect(normaliseBaseUrl('127.0.0.1:8001', { tls: { ca: 'x' } })).toBe('https://127.0.0.1:8001');
    expect(normaliseBaseUrl('http://127.0.0.1:8001', { tls: { ca: 'x' } })).toBe('http://127.0.0.1:8001');
  });
});

/** A throwaway PKI: a CA, a server certificate for 127.0.0.1, one for another name, a client certificate; and a stranger CA. */
interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  misnamedCert: string;
  misnamedKey: string;
  clientCert: string;
  clientKey: string;
  /** A second client certificate from the same CA: the first one renewed. */
  renewedCert: string;
  renewedKey: string;
  strangerCa: string;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'minkube-pki-'));
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string): void => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const ca = (name: string): void => {
    key(name);
    ssl('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-days', '1', '-out', `${name}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const leaf = (name: string, extensions: string): void => {
    key(name);
    ssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), extensions);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  };
  try {
    ca('ca');
    ca('stranger');
    leaf('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    leaf('misnamed', 'subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\n');
    leaf('client-m1', 'extendedKeyUsage=clientAuth\n');
    leaf('client-m1-renewed', 'extendedKeyUsage=clientAuth\n');
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    return {
      ca: read('ca.crt'),
      serverCert: read('server.crt'),
      serverKey: read('server.key'),
      misnamedCert: read('misnamed.crt'),
      misnamedKey: read('misnamed.key'),
      clientCert: read('client-m1.crt'),
      clientKey: read('client-m1.key'),
      renewedCert: read('client-m1-renewed.crt'),
      renewedKey: read('client-m1-renewed.key'),
      strangerCa: read('stranger.crt'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(['undici', 'node'] as const)('HttpClient (%s pool) over mutual TLS', (pool) => {
  let pki: Pki;
  let address = '';
  let misnamedAddress = '';
  const servers: (HttpsServer | Server)[] = [];
  const clients: HttpClient[] = [];
  const client = (tls: TlsMaterial): HttpClient => {
    const c = new HttpClient({ tls, timeoutMs: 3000, pool });
    clients.push(c);
    return c;
  };

  // Answers /slow only once the test releases it, and says when one arrives.
  let slowArrived: () => void = () => {};
  let releaseSlow: () => void = () => {};
  const slow = (): Promise<void> => {
    slowArrived();
    return new Promise((resolve) => (releaseSlow = resolve));
  };

  // Answers the common name of the client certificate it verified.
  const httpsServer = (cert: string, key: string): HttpsServer =>
    createHttpsServer({ cert, key, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const seen = req.url === '/auth' ? { authorization: req.headers.authorization ?? null } : {};
      const answer = (): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client: peer.subject?.CN ?? null, ...seen }));
      if (req.url === '/slow') void slow().then(answer);
      else answer();
    });

  beforeAll(async () => {
    pki = makePki();
    servers.push(httpsServer(pki.serverCert, pki.serverKey), httpsServer(pki.misnamedCert, pki.misnamedKey));
    address = `127.0.0.1:${await listen(servers[0]!)}`;
    misnamedAddress = `127.0.0.1:${await listen(servers[1]!)}`;
  }, 30_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map(close));
  });

  it("reaches a server its CA signed, over https for a bare 'host:port', and the server sees our certificate", async () => {
    const http = client({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    const url = http.baseUrlOf(address);
    expect(url).toBe(`https://${address}`);
    const res = await http.requestOk({ method: 'GET', url, path: '/who' });
    expect(JSON.parse(res.text)).toEqual({ client: 'client-m1' });
  });

  it("sends the bearer token over TLS; a request's own authorization header wins over it, and an ApiClient's own token over the pool's", async () => {
    const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    const http = new HttpClient({ tls, token: 'tok-1', timeoutMs: 3000, pool });
    clients.push(http);
    const url = http.baseUrlOf(address);
    const authorizationOf = async (headers?: Record<string, string>): Promise<unknown> =>
      (JSON.parse((await http.requestOk({ method: 'GET', url, path: '/auth', ...(headers === undefined ? {} : { headers }) })).text) as { authorization: unknown }).authorization;
    expect(await authorizationOf()).toBe('Bearer tok-1');
    expect(await authorizationOf({ authorization: 'Bearer other' })).toBe('Bearer other');
    expect(await new ApiClient(url, { http }).request('GET', '/auth')).toMatchObject({ authorization: 'Bearer tok-1' });
    expect(await new ApiClient(url, { http, token: 'api-tok' }).request('GET', '/auth')).toMatchObject({ authorization: 'Bearer api-tok' });
  });

  it('a server signed by a CA we do not trust is UNREACHABLE naming TLS, not a crash', async () => {
    const http = client({ ca: pki.strangerCa, cert: pki.clientCert, key: pki.clientKey });
    const e = await rejection(http.request({ method: 'POST', url: http.baseUrlOf(address), path: '/who', body: '{}' }));
    expect(e.code).toBe('UNREACHABLE');
    // Nothing was sent before the handshake failed, so even a write's outcome is known.
    expect(e.message).toMatch(new RegExp(`^cannot reach https://${address}/who \\(TLS: [^)]+\\)$`));
  });

  it("a server whose certificate names another host is UNREACHABLE naming TLS and the name", async () => {
    const http = client({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    const e = await rejection(http.request({ method: 'GET', url: http.baseUrlOf(misnamedAddress), path: '/who' }));
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toMatch(/\(TLS: .*127\.0\.0\.1/);
  });

  it('without a client certificate the server refuses us: UNREACHABLE', async () => {
    const http = client({ ca: pki.ca });
    const e = await rejection(http.request({ method: 'GET', url: http.baseUrlOf(address), path: '/who' }));
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toMatch(new RegExp(`^cannot reach https://${address}/who \\(TLS: .*client certificate.*\\)$`));
  });

  it('a server that answers in plain HTTP (an insecure cluster) is UNREACHABLE saying so and naming its http origin (what --api takes), not the path', async () => {
    const plain = createServer((_req, res) => void res.end('{}'));
    servers.push(plain);
    const plainAddress = `127.0.0.1:${await listen(plain)}`;
    const http = client({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    const e = await rejection(http.request({ method: 'POST', url: http.baseUrlOf(plainAddress), path: '/who', body: '{}' }));
    expect(e.code).toBe('UNREACHABLE');
    // The handshake failed before anything was sent: a write's outcome is known.
    expect(e.message).toBe(`cannot reach https://${plainAddress}/who (TLS: the server does not speak TLS; if its cluster is insecure, use http://${plainAddress})`);
  });

  it('a server that accepts the connection and never answers the handshake (SIGSTOP): a write fails as never sent within the handshake bound', async () => {
    // What a stopped process's port does: the kernel completes the TCP connect, nobody reads the ClientHello.
    const held: Socket[] = [];
    const silent = createNetServer((s) => void held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    // undici's connect timeout covers its handshake; node's pool (the CLI's) has a bound of its own for it.
    const bound = pool === 'node' ? { handshakeTimeoutMs: 300 } : { connectTimeoutMs: 300 };
    const http = new HttpClient({ tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }, timeoutMs: 20_000, pool, ...bound });
    clients.push(http);
    try {
      const started = performance.now();
      const e = await rejection(http.request({ method: 'PUT', url, path: '/v1/kv/x', body: '{"value":"1"}' }));
      // Well before the request's own deadline, which would have said TIMEOUT, outcome unknown.
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(held.length).toBeGreaterThan(0);
      expect(e.code).toBe('UNREACHABLE');
      expect(e.message).not.toMatch(/outcome is unknown/);
      expect(neverSent(e)).toBe(true);
      if (pool === 'node') expect(e.message).toBe(`cannot reach ${url}/v1/kv/x (connected, but the TLS handshake did not finish within 300 ms: the server accepts connections and answers nothing (stopped, or overloaded))`);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('a certificate without its key is refused at construction', () => {
    expect(() => new HttpClient({ tls: { ca: pki.ca, cert: pki.clientCert } })).toThrow(/needs its key/);
  });

  it('after setTls the server sees the renewed certificate, and a request under way still gets its answer', async () => {
    const http = client({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    const url = http.baseUrlOf(address);
    const who = async (): Promise<unknown> => JSON.parse((await http.requestOk({ method: 'GET', url, path: '/who' })).text);
    expect(await who()).toEqual({ client: 'client-m1' });
    const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
    const underway = http.requestOk({ method: 'GET', url, path: '/slow' });
    await arrived;

    http.setTls({ ca: pki.ca, cert: pki.renewedCert, key: pki.renewedKey });
    expect(await who()).toEqual({ client: 'client-m1-renewed' });
    releaseSlow();
    expect(JSON.parse((await underway).text)).toEqual({ client: 'client-m1' });
    expect(http.tls?.cert).toBe(pki.renewedCert);
  });

  it('verifyServer false (a first contact checked another way): reaches a server whose certificate no trusted CA signed and that names another host; a client that verifies refuses it', async () => {
    const stranger = createHttpsServer({ cert: pki.misnamedCert, key: pki.misnamedKey }, (_req, res) => void res.end('{"ok":true}'));
    servers.push(stranger);
    const url = `https://127.0.0.1:${await listen(stranger)}`;
    const unverified = new HttpClient({ verifyServer: false, timeoutMs: 3000, pool });
    clients.push(unverified);
    expect((await unverified.requestOk({ method: 'GET', url, path: '/ca' })).text).toBe('{"ok":true}');
    const verifying = new HttpClient({ timeoutMs: 3000, pool });
    clients.push(verifying);
    const e = await rejection(verifying.request({ method: 'GET', url, path: '/ca' }));
    expect(e.code).toBe('UNREACHABLE');
    expect(e.message).toMatch(/\(TLS: /);
    // Nothing to verify with: material with it is a programmer's error.
    expect(() => new HttpClient({ verifyServer: false, tls: { ca: pki.ca } })).toThrow(/verifies no server/);
  });

  it('setTls refuses a client made without TLS, and a certificate without its key', () => {
    expect(() => client({ ca: pki.ca }).setTls({ ca: pki.ca, cert: pki.renewedCert })).toThrow(/needs its key/);
    expect(() => new HttpClient().setTls({ ca: pki.ca })).toThrow(/without TLS/);
  });
});
