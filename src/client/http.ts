// The one HTTP client every caller uses (CLI, worker -> manager, manager -> worker, snapshot chunks): pooled
// keep-alive undici Agents, one per server a call expects (worker w1, manager m2, any manager: a connection verified
// for one never serves another), optional TLS (a CA to trust, a client certificate) and a bearer token.
// Every failure comes back as a MinkubeError: TIMEOUT, or UNREACHABLE naming the URL and the reason.
// undici is loaded with the first request, not with this module: it costs a CLI command that sends nothing (help, a
// usage error) more than all the rest of its start-up. A short-lived process asks for pool 'node' (node-pool.ts).
import type { IncomingHttpHeaders } from 'node:http';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { NodePoolBody } from './node-pool.js';
import { assert } from '../lib/assert.js';
import { errorFromBody, isErrorCode, MinkubeError } from '../lib/errors.js';
import { anyManager, type ExpectedServer } from '../lib/ids.js';
import { limits } from '../lib/limits.js';

/** PEM strings. */
export interface TlsMaterial {
  /** The server must present a certificate signed by this CA (or by HttpClientOptions.apiCaPem's). */
  ca: string;
  /** Our client certificate and its key (mutual TLS): both or neither. */
  cert?: string;
  key?: string;
  /**
   * A check of the server's certificate beyond the CA and the host name: that it names `expected`, the server the
   * request meant to reach (HttpRequest.server; security/ca.ts expectedServerProblem). Returns why not, or undefined
   * to accept. A connection is checked once, as it opens, and serves only requests that expect the same server.
   */
  checkServer?: (cert: PeerCertificate, expected: ExpectedServer) => string | undefined;
}

export interface HttpClientOptions {
  /** When set, 'host:port' addresses mean https and the server is verified against tls.ca. */
  tls?: TlsMaterial;
  /**
   * More CAs (PEM, one or several) a server's certificate may chain to, beside tls.ca: the one that signed the
   * managers' operator API certificate when it is not the cluster CA (api.tlsCaFile). Kept when setTls renews tls.
   */
  apiCaPem?: string;
  /** Sent as `authorization: Bearer <token>` on every request (a request's own authorization header wins). */
  token?: string;
  /** Per request unless the request says otherwise (default limits.requestTimeoutMsDefault plus a little). */
  timeoutMs?: number;
  connectionsPerOriginMax?: number;
  /**
   * 'undici' (the default): undici's Agent, for the daemons. 'node': node's own http(s) Agent, for a process that
   * sends a few requests and ends (the CLI): undici compiles its WebAssembly HTTP parser with its first connection,
   * which costs such a process more CPU than all the rest of its work.
   */
  pool?: 'undici' | 'node';
  /**
   * The source address of its connections: a node binds its own address, so that nodes on one host can be cut from
   * each other by address (as the Raft transport does). Only an IP address; undefined lets the system choose.
   */
  localAddress?: string;
  /**
   * How long a connection may take to open before the request fails as never sent (UNREACHABLE, so a caller with
   * other managers moves on): the TCP connect for pool 'node', the connect and TLS handshake for undici. Default
   * limits.httpConnectTimeoutMsDefault for pool 'node', timeoutMs for undici, and never past timeoutMs.
   */
  connectTimeoutMs?: number;
  /**
   * Pool 'node': how long a new https connection's TLS handshake may take once its TCP connect is made before the
   * request fails as never sent (UNREACHABLE; nothing of a request leaves before its handshake ends). A server that
   * accepts connections and answers nothing (stopped with SIGSTOP: the kernel still completes the TCP connect) then
   * costs a CLI write this long before it moves on, not a timeout with its outcome unknown. Default
   * limits.httpHandshakeTimeoutMsDefault, never past timeoutMs. undici's connectTimeoutMs covers its handshake.
   */
  handshakeTimeoutMs?: number;
  /**
   * false: an https server's certificate is not checked at all (any signer, any name), and tls must be unset. Only for
   * a first contact whose answer is checked another way: a joining node fetches the cluster CA and trusts it once its
   * digest matches the join token's (daemon/join.ts). Default true.
   */
  verifyServer?: boolean;
}

/** What HttpClient asks of a pool: undici's Agent, or a NodePool. */
interface Pool {
  request(r: { origin: string; path: string; method: Dispatcher.HttpMethod; headers: Readonly<Record<string, string>>; body: string | Uint8Array | null; signal: AbortSignal }): Promise<{
    statusCode: number;
    headers: IncomingHttpHeaders;
    body: NodePoolBody;
  }>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface HttpRequest {
  method: string;
  /** A base URL ('http://host:port[/prefix]', as normaliseBaseUrl answers) or a whole URL. */
  url: string;
  /** Appended to url, query included: '/v1/tasks?limit=10'. */
  path?: string;
  headers?: Readonly<Record<string, string>>;
  body?: string | Uint8Array;
  timeoutMs?: number;
  /** Aborting abandons the request: it rejects with signal.reason when that is a MinkubeError, else UNREACHABLE. */
  signal?: AbortSignal;
  /**
   * Whom the request means to reach, which the server's certificate must name (TlsMaterial.checkServer): worker w1,
   * manager m2, or (the default) any manager's API.
   */
  server?: ExpectedServer;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL asked (origin and path), for messages. */
  readonly url: string;
}

export interface HttpTextResponse extends HttpResponse {
  readonly text: string;
}

export interface HttpBytesResponse extends HttpResponse {
  readonly bytes: Uint8Array;
}

export interface HttpStreamResponse extends HttpResponse {
  /** The body as it arrives. Read it to its end, or abort the request's signal. */
  readonly body: AsyncIterable<Uint8Array>;
}

type BodyReader<B> = (body: NodePoolBody) => Promise<B>;
const readText: BodyReader<string> = (body) => body.text();
const readBytes: BodyReader<Uint8Array> = (body) => body.bytes();

export class HttpClient {
  private material: TlsMaterial | undefined;
  private apiCaPem: string | undefined;
  /**
   * One pool per server expected (serverKey; '' for all when nothing checks the server), made with its first request
   * (see agentNow); in the order of their last use, least recent first, at most limits.httpClientPoolsMax.
   */
  private readonly agents = new Map<string, Pool>();
  private closed = false;
  /**
   * Pools replaced (setTls, setApiCa) or least recently used past the limit that still finish their requests;
   * close() destroys them with the current ones.
   */
  private readonly retiring = new Set<Pool>();
  private readonly connectionsPerOriginMax: number;
  private readonly pool: 'undici' | 'node';
  private readonly authorization: string | undefined;
  /** The headers of a request that brings none of its own: built once, not per request. */
  private readonly baseHeaders: Readonly<Record<string, string>>;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly localAddress: string | undefined;
  private readonly verifyServer: boolean;

  constructor(options: HttpClientOptions = {}) {
    const { tls } = options;
    assertPaired(tls);
    this.verifyServer = options.verifyServer ?? true;
    assert(this.verifyServer || tls === undefined, 'an HTTP client that verifies no server has no TLS material to verify it with');
    this.material = tls;
    this.apiCaPem = options.apiCaPem;
    this.authorization = options.token === undefined ? undefined : `Bearer ${options.token}`;
    this.baseHeaders = this.authorization === undefined ? {} : { authorization: this.authorization };
    this.timeoutMs = options.timeoutMs ?? limits.requestTimeoutMsDefault + 500;
    this.connectionsPerOriginMax = options.connectionsPerOriginMax ?? limits.httpClientConnectionsPerOriginMax;
    this.pool = options.pool ?? 'undici';
    // undici's connect timeout covers the TLS handshake too, which a busy server can be slow to finish: the daemons'
    // pools keep the whole request timeout for it (untilAborted holds them to each request's own deadline).
    this.connectTimeoutMs = Math.min(options.connectTimeoutMs ?? (this.pool === 'node' ? limits.httpConnectTimeoutMsDefault : this.timeoutMs), this.timeoutMs);
    this.handshakeTimeoutMs = Math.min(options.handshakeTimeoutMs ?? limits.httpHandshakeTimeoutMsDefault, this.timeoutMs);
    this.localAddress = options.localAddress;
  }

  /** The material requests are made with now (setTls replaces it). */
  get tls(): TlsMaterial | undefined {
    return this.material;
  }

  /**
   * Renewed material: requests from now on go through a new pool that presents it. The old pool is closed once its
   * requests under way have their answers (they were authenticated with the old certificate, which is still valid).
   */
  setTls(tls: TlsMaterial): void {
    if (this.material === undefined) {
      // Base URLs already handed out say http://: switching this client to https would leave them wrong.
      throw new MinkubeError('CONFIG_INVALID', 'this HTTP client was made without TLS; it cannot take certificates later');
    }
    assertPaired(tls);
    this.material = tls;
    this.retireAgent();
  }

  /** The CAs trusted beside tls.ca (apiCaPem; undefined: none): requests from now on go through a new pool. */
  setApiCa(apiCaPem: string | undefined): void {
    if (apiCaPem === this.apiCaPem) return;
    this.apiCaPem = apiCaPem;
    if (this.material !== undefined) this.retireAgent();
  }

  /** The next requests make new pools; the old ones are closed once their requests under way have their answers. */
  private retireAgent(): void {
    for (const [key, old] of this.agents) this.retire(key, old);
  }

  private retire(key: string, old: Pool): void {
    this.agents.delete(key);
    this.retiring.add(old);
    void old.close().catch(() => undefined).finally(() => this.retiring.delete(old));
  }

  /** The pool's key for requests that expect `server`: without a check of whom a certificate names, one for all. */
  private keyOf(server: ExpectedServer): string {
    return this.material?.checkServer === undefined ? '' : serverKey(server);
  }

  /** The pool made already for requests that expect `server`, now the most recently used; undefined for none. */
  private pooled(server: ExpectedServer): Pool | undefined {
    const key = this.keyOf(server);
    const agent = this.agents.get(key);
    if (agent === undefined) return undefined;
    // Last in the map is the most recently used: the first is retired when the map is full.
    this.agents.delete(key);
    this.agents.set(key, agent);
    return agent;
  }

  /** The pool for requests that expect `server`, under the current material: made (and undici loaded) on first use. */
  private async agentNow(server: ExpectedServer): Promise<Pool> {
    if (this.closed) return closedPool;
    const { Agent } = this.pool === 'node' ? await loadNodePool() : await loadUndici();
    if (this.closed) return closedPool;
    // Another request may have made it while this one waited for the module.
    const made = this.pooled(server);
    if (made !== undefined) return made;
    const agent = this.newAgent(Agent, server);
    this.agents.set(this.keyOf(server), agent);
    if (this.agents.size > limits.httpClientPoolsMax) {
      const [oldestKey, oldest] = this.agents.entries().next().value!;
      this.retire(oldestKey, oldest);
    }
    return agent;
  }

  private newAgent(Agent: new (o: { connections: number; connect: object; localAddress?: string }) => Pool, server: ExpectedServer): Pool {
    const tls = this.material;
    const unverified = this.verifyServer ? {} : { rejectUnauthorized: false };
    // undici's connect timeout covers the handshake too; NodePool's covers the TCP connect only, so it gets its own.
    const handshake = this.pool === 'node' ? { handshakeTimeout: this.handshakeTimeoutMs } : {};
    const connect = { timeout: this.connectTimeoutMs, ...handshake, ...unverified, ...(tls === undefined ? {} : { ca: trustedCas(tls, this.apiCaPem), ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }), ...serverCheckOf(tls, server) }) };
    return new Agent({ connections: this.connectionsPerOriginMax, connect, ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }) });
  }

  /** An address as this client reaches it: 'host:port' is https when TLS material is configured. */
  baseUrlOf(address: string): string {
    return normaliseBaseUrl(address, { tls: this.tls });
  }

  /** One exchange; any status is an answer (see requestOk). Transport failures throw MinkubeErrors. */
  request(r: HttpRequest): Promise<HttpTextResponse> {
    return this.exchange(r, readText).then(([res, text]) => ({ ...res, text }));
  }

  requestBytes(r: HttpRequest): Promise<HttpBytesResponse> {
    return this.exchange(r, readBytes).then(([res, bytes]) => ({ ...res, bytes }));
  }

  /** As request(), but anything other than a 2xx throws the MinkubeError its body describes. */
  async requestOk(r: HttpRequest): Promise<HttpTextResponse> {
    const res = await this.request(r);
    if (!isOk(res.status)) throw errorFromResponse(res, r.method, r.server);
    return res;
  }

  /**
   * An answer read as it comes (a followed log): the deadline covers only its headers, and the body lasts until the
   * server ends it or the caller aborts r.signal (then the iteration throws the abort's error). A status other than
   * 2xx throws the MinkubeError its body describes; a connection cut part-way throws UNREACHABLE from the iteration.
   */
  async stream(r: HttpRequest): Promise<HttpStreamResponse> {
    const headers = this.headersOf(r.headers);
    const { origin, path, url, controller, stopDeadline, release } = this.begin(r, headers);
    const mapped = (err: unknown): MinkubeError => (err instanceof MinkubeError ? err : transportError(err, r.method, url));
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      const server = r.server ?? anyManager;
      const agent = this.pooled(server) ?? (await this.agentNow(server));
      res = await untilAborted(agent.request({ origin, path, method: r.method as Dispatcher.HttpMethod, headers, body: r.body ?? null, signal: controller.signal }), controller.signal);
    } catch (err) {
      release();
      throw mapped(err);
    }
    if (!isOk(res.statusCode)) {
      try {
        throw errorFromResponse({ status: res.statusCode, headers: res.headers, url, text: await res.body.text() }, r.method, r.server);
      } catch (err) {
        throw mapped(err);
      } finally {
        release();
      }
    }
    stopDeadline();
    const source = res.body;
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of source) yield chunk;
      } catch (err) {
        if (controller.signal.aborted && controller.signal.reason instanceof MinkubeError) throw controller.signal.reason;
        if (err instanceof MinkubeError) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        throw new MinkubeError('UNREACHABLE', `the answer of ${r.method} ${url} was cut off part-way (${reason})`, { cause: err });
      } finally {
        release();
      }
    }
    return { status: res.statusCode, headers: res.headers, url, body: body() };
  }

  /** Closes every pooled connection; requests under way fail. */
  async close(): Promise<void> {
    // A request after close() fails, as it did before any was sent: closedPool refuses everything (making undici's
    // only to destroy it cost a stopping node 0.1 s).
    this.closed = true;
    const agents = [...this.agents.values(), ...this.retiring];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.destroy()));
  }

  /**
   * A request's URL and the one controller that carries both its deadline and the caller's abort (its reason is the
   * error to throw); release() lets go of both. A request that would carry credentials in clear is refused first.
   */
  private begin(r: HttpRequest, headers: Readonly<Record<string, string>>): { origin: string; path: string; url: string; controller: AbortController; stopDeadline: () => void; release: () => void } {
    const { origin, path } = splitUrl(r.url, r.path ?? '');
    const url = origin + path;
    refuseCredentialsInClear(r.method, url, headers);
    const timeoutMs = r.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(timeoutError(r.method, url, timeoutMs)), timeoutMs);
    const caller = r.signal;
    const onAbort = (): void => controller.abort(abandonedError(r.method, url, caller?.reason));
    if (caller !== undefined) {
      if (caller.aborted) onAbort();
      else caller.addEventListener('abort', onAbort, { once: true });
    }
    const stopDeadline = (): void => clearTimeout(timer);
    return { origin, path, url, controller, stopDeadline, release: () => {
      stopDeadline();
      caller?.removeEventListener('abort', onAbort);
    } };
  }

  private async exchange<B>(r: HttpRequest, read: BodyReader<B>): Promise<[HttpResponse, B]> {
    const headers = this.headersOf(r.headers);
    const { origin, path, url, controller, release } = this.begin(r, headers);
    try {
      const server = r.server ?? anyManager;
      const agent = this.pooled(server) ?? (await this.agentNow(server));
      const res = await untilAborted(agent.request({ origin, path, method: r.method as Dispatcher.HttpMethod, headers, body: r.body ?? null, signal: controller.signal }), controller.signal);
      const body = await read(res.body);
      return [{ status: res.statusCode, headers: res.headers, url }, body];
    } catch (err) {
      throw err instanceof MinkubeError ? err : transportError(err, r.method, url);
    } finally {
      release();
    }
  }

  private headersOf(headers: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
    if (headers === undefined) return this.baseHeaders;
    if (this.authorization === undefined || headers.authorization !== undefined) return headers;
    return { authorization: this.authorization, ...headers };
  }
}

/**
 * The pool's answer, or the signal's reason as soon as it aborts. undici leaves a request whose connection is still
 * being made alone until the connect ends (its connect timeout: a host that drops packets held every request 10 s
 * past its deadline); the request is abandoned here, and an answer that comes after all is let go of.
 */
function untilAborted<R extends { body: NodePoolBody }>(pending: Promise<R>, signal: AbortSignal): Promise<R> {
  if (signal.aborted) {
    void pending.then(letGo, () => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      void pending.then(letGo, () => undefined);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (res) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) return letGo(res);
        settled = true;
        resolve(res);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        reject(err as Error);
      },
    );
  });
}

/** An answer nobody waits for any more: its body is dropped, so its connection goes back to the pool or closes. */
function letGo(res: { body: NodePoolBody }): void {
  const body = res.body as NodePoolBody & { destroy?: () => void };
  if (typeof body.destroy === 'function') body.destroy();
  else void body[Symbol.asyncIterator]().return?.();
}

/**
 * An Authorization header (an API token, a session) never crosses the wire in clear: a request to a plain http:// URL
 * that carries one fails HTTPS_REQUIRED before anything is sent. A secure cluster's managers answer plain HTTP with
 * HTTPS_REQUIRED too, but only once the token has crossed the wire, to them or to whoever listens at that address;
 * an insecure cluster takes no token, so nothing it needs is refused.
 */
function refuseCredentialsInClear(method: string, url: string, headers: Readonly<Record<string, string>>): void {
  if (!isPlainHttp(url) || !Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) return;
  throw new MinkubeError('HTTPS_REQUIRED', `${method} ${url}: a token is sent only over TLS, never over plain HTTP: nothing was sent; use ${url.replace(/^http:/i, 'https:')}`);
}

/** Whether a URL (as a user gives one, or as normaliseBaseUrl answers) is plain http://, in any case. */
export function isPlainHttp(url: string): boolean {
  return /^http:\/\//i.test(url);
}

/** What a client closed before its first request keeps: it fails every request as undici's destroyed pool does. */
const closedPool: Pool = {
  request: () => Promise.reject(Object.assign(new Error('The client is destroyed'), { code: 'UND_ERR_DESTROYED' })),
  close: () => Promise.resolve(),
  destroy: () => Promise.resolve(),
};

let undiciModule: Promise<typeof import('undici')> | undefined;

function loadUndici(): Promise<typeof import('undici')> {
  return (undiciModule ??= import('undici'));
}

async function loadNodePool(): Promise<{ Agent: typeof import('./node-pool.js').NodePool }> {
  return { Agent: (await import('./node-pool.js')).NodePool };
}

/** tls.ca and apiCaPem as one PEM string: node trusts each certificate it holds. */
function trustedCas(tls: TlsMaterial, apiCaPem: string | undefined): string {
  return apiCaPem === undefined ? tls.ca : `${tls.ca.trimEnd()}\n${apiCaPem}`;
}

function assertPaired(tls: TlsMaterial | undefined): void {
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new MinkubeError('CONFIG_INVALID', 'a client certificate needs its key, and a key its certificate');
  }
}

/** A pool's key: the server its connections were verified to be. */
function serverKey(server: ExpectedServer): string {
  return server.id === undefined ? server.role : `${server.role} ${server.id}`;
}

/**
 * The host name check every TLS client makes (its refusal says which host the certificate is not for), then the
 * caller's own check that the certificate names `server`, the one the pool's requests expect.
 */
function serverCheckOf(tls: TlsMaterial, server: ExpectedServer): { checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined } {
  const own = tls.checkServer;
  return {
    checkServerIdentity: (host, cert) => {
      const hostProblem = checkServerIdentity(host, cert);
      if (hostProblem !== undefined) return notForHost(host, cert, hostProblem);
      const why = own?.(cert, server);
      // A code of node's TLS errors: the handshake failed, so nothing was sent (a write's outcome is known).
      return why === undefined ? undefined : Object.assign(new Error(`the server's certificate is refused: ${why}`), { code: 'ERR_TLS_SERVER_REFUSED' });
    },
  };
}

/** node's refusal of a certificate whose names miss the host, saying the host and the names it holds. */
function notForHost(host: string, cert: PeerCertificate, err: Error & { code?: string }): Error {
  const names = cert.subjectaltname === undefined || cert.subjectaltname === '' ? 'it names no host' : `its names: ${cert.subjectaltname}`;
  return Object.assign(new Error(`the server's certificate is refused: it is not for ${host}; ${names}`), { code: err.code ?? 'ERR_TLS_CERT_ALTNAME_INVALID' });
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}

/**
 * The MinkubeError a non-2xx answer describes ({ error: { code, message } }), or one naming its status. Given the
 * request's method (and whom it meant to reach), an answer with no Minkube error in its body is no Minkube node's
 * (a web server at that address answers 404 or 501): UNREACHABLE saying so (unexpectedAnswer), not an INVALID_BODY
 * or INTERNAL that would blame the request or the cluster.
 */
export function errorFromResponse(res: HttpTextResponse, method?: string, server?: ExpectedServer): MinkubeError {
  const body = parseJson(res.text);
  if (method !== undefined && !isMinkubeErrorBody(body)) {
    return unexpectedAnswer(method, res.url, `HTTP ${res.status}, with no Minkube error in its body`, server?.role === 'worker' ? 'worker' : 'manager');
  }
  return errorFromBody(body, res.status);
}

function isMinkubeErrorBody(body: unknown): boolean {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null | undefined)?.error;
  return typeof e === 'object' && e !== null && isErrorCode(e.code) && typeof e.message === 'string';
}

/** Why an answer was not a Minkube node's: the cause of unexpectedAnswer's error (so it is no answer a node gave). */
class UnexpectedAnswer extends Error {
  override readonly name = 'UnexpectedAnswer';
}

/**
 * UNREACHABLE: `method url` answered, but not as a Minkube manager's (or worker's) API does (`problem`: 'not JSON', the
 * first field missing or wrong, or a status with no Minkube error). Whatever answered is no node of the cluster, or not
 * one that can be read; a write's outcome is unknown (something took it), so it is not sent to another manager.
 */
export function unexpectedAnswer(method: string, url: string, problem: string, role: 'manager' | 'worker' = 'manager'): MinkubeError {
  return new MinkubeError('UNREACHABLE', `${method} ${url} did not answer as a Minkube ${role}'s API does (${problem})`, { cause: new UnexpectedAnswer(problem) });
}

export function isUnexpectedAnswer(err: MinkubeError): boolean {
  return err.cause instanceof UnexpectedAnswer;
}

export function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Why `text` is not a manager's address as a user gives one (--api, --join, MINKUBE_API), or null: an http(s) URL
 * with a host, or host:port without a scheme (a port from 1 to 65535; an IPv6 host in brackets). normaliseBaseUrl
 * alone would take any word for a host name (`not-a-url` as http://not-a-url) and leave it to fail as UNREACHABLE.
 */
export function baseUrlProblem(text: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return `not a URL: ${JSON.stringify(text)}`;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `not an http(s) URL: ${text}`;
    return url.hostname === '' ? `no host in ${JSON.stringify(text)}` : null;
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s/:?#@[\]]+):([0-9]{1,5})$/.exec(text);
  const port = m === null ? 0 : Number(m[2]);
  if (m === null || port < 1 || port > 65_535 || !URL.canParse(`http://${text}`)) {
    return `not an http(s) URL nor a host:port: ${JSON.stringify(text)}`;
  }
  return null;
}

/**
 * 'host:port' becomes http://host:port, or https:// when TLS material is configured; an explicit scheme is kept.
 * The answer has no trailing slash, so paths append to it.
 */
export function normaliseBaseUrl(base: string, o: { tls?: TlsMaterial | undefined } = {}): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(base) ? base : `${o.tls === undefined ? 'http' : 'https'}://${base}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new MinkubeError('INVALID_PARAM', `not a URL: ${JSON.stringify(base)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MinkubeError('INVALID_PARAM', `not an http(s) URL: ${base}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Origin and path of base + path without parsing a URL on every request (the leader sends thousands a second). */
function splitUrl(base: string, path: string): { origin: string; path: string } {
  const schemeEnd = base.indexOf('://');
  if (schemeEnd < 0) throw new MinkubeError('INVALID_PARAM', `not an http(s) URL: ${base}`);
  const slash = base.indexOf('/', schemeEnd + 3);
  if (slash < 0) return { origin: base, path: path === '' ? '/' : path };
  return { origin: base.slice(0, slash), path: base.slice(slash) + path };
}

/**
 * The client's own timeout. Its cause tells it from a TIMEOUT a server answered (an error met on the way carries its
 * cause, a server's answer none), so a manager passing a request on can say which it was. Whole ms: a deadline
 * computed from a monotonic reading is a fraction.
 */
function timeoutError(method: string, url: string, timeoutMs: number): MinkubeError {
  // A read changes nothing: only a write's outcome can be unknown.
  const outcome = method === 'GET' ? '' : '; the outcome is unknown';
  const noAnswer = `no answer within ${Math.round(timeoutMs)} ms`;
  return new MinkubeError('TIMEOUT', `${method} ${url}: ${noAnswer}${outcome}`, { cause: new Error(noAnswer) });
}

function abandonedError(method: string, url: string, reason: unknown): MinkubeError {
  if (reason instanceof MinkubeError) return reason;
  const outcome = method === 'GET' ? '' : '; the outcome is unknown';
  return new MinkubeError('UNREACHABLE', `${method} ${url}: abandoned${outcome}`, { cause: reason });
}

/**
 * Whether a transport failure proves the request never reached the server: its connection was refused or could not
 * be made (not a TLS failure: another manager of the cluster would refuse the same certificate).
 */
export function neverSent(err: MinkubeError): boolean {
  if (err.code !== 'UNREACHABLE') return false;
  const cause = err.cause as { code?: string; cause?: { code?: string } } | undefined;
  const code = cause?.code ?? cause?.cause?.code;
  return code !== undefined && unsentCodes.has(code);
}

/**
 * Whether a write that failed so may still have reached the server and been carried out there: no answer in time, or
 * a connection lost after the request may have left. Not a refused connection, a failed lookup or TLS handshake.
 */
export function mayHaveArrived(err: MinkubeError): boolean {
  if (err.code === 'TIMEOUT') return true;
  if (err.code !== 'UNREACHABLE') return false;
  const cause = err.cause as { code?: string; cause?: { code?: string } } | undefined;
  const code = cause?.code ?? cause?.cause?.code;
  return !(code !== undefined && (unsentCodes.has(code) || isTlsFailure(code) || code === 'EPROTO'));
}

/** Connection errors that mean the request never left: nothing can have happened on the server. */
// ERR_TLS_SERVER_REFUSED: our own check refused the server's certificate (it is not a manager's): another manager of
// the list may well be one, unlike a certificate the CA check refuses. ERR_TLS_CERT_ALTNAME_INVALID: the certificate
// does not name the address dialled (an operator's certificate that left one manager out): another's may.
const unsentCodes: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_TLS_SERVER_REFUSED', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** OpenSSL's verification failures, as node reports them (ERR_TLS_* and ERR_SSL_* are matched by prefix). */
const tlsVerifyCodes: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

/** The verification failures that mean the server's certificate chains to no CA this client trusts. */
const untrustedCaCodes: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/**
 * The TLS code (UNABLE_TO_VERIFY_LEAF_SIGNATURE, say) when `err` is a request refused because no CA the client trusts
 * signed the server's certificate (transportError's "no CA this client trusts signed it"); else null.
 */
export function untrustedCaCode(err: MinkubeError): string | null {
  if (err.code !== 'UNREACHABLE') return null;
  const cause = err.cause as { code?: string; cause?: { code?: string } } | undefined;
  const code = cause?.code ?? cause?.cause?.code;
  return code !== undefined && untrustedCaCodes.has(code) ? code : null;
}

function isTlsFailure(code: string | undefined): boolean {
  return code !== undefined && (tlsVerifyCodes.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'));
}

/**
 * UNREACHABLE naming the URL and the reason. A refused connection or a failed TLS handshake sent nothing (no HTTP
 * byte leaves before the handshake completes), and a GET changes nothing; anything else lost midway may have
 * delivered a write, so its outcome is unknown.
 */
export function transportError(err: unknown, method: string, url: string): MinkubeError {
  const e = err as (Error & { code?: string; cause?: { code?: string; message?: string } }) | undefined;
  const code = e?.code ?? e?.cause?.code;
  // EPROTO: OpenSSL failed the handshake (node gives no ERR_SSL_ code when it happens on the first write).
  const tls = isTlsFailure(code) || (code === 'EPROTO' && url.startsWith('https:'));
  const unsent = tls || (code !== undefined && unsentCodes.has(code)) || method === 'GET';
  return new MinkubeError('UNREACHABLE', `cannot reach ${url} (${reasonOf(err, code, tls, url)})${unsent ? '' : '; the outcome is unknown'}`, { cause: err });
}

/** OpenSSL's reason out of its long message ('<id>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>...'). */
function tlsReason(message: string | undefined, code: string | undefined): string {
  // Node's own pool sees TLS 1.3's alert where undici sees a bare close (see reasonOf).
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') return 'we sent none, and the server requires a client certificate';
  if (message === undefined) return code ?? 'failed';
  return /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(message)?.[1] ?? message;
}

/** A system error by its code (ECONNREFUSED); undici's and TLS's by their message, which says more than the code. */
function reasonOf(err: unknown, code: string | undefined, tls: boolean, url: string): string {
  const e = err as (Error & { cause?: { message?: string }; socket?: { bytesRead?: number } }) | undefined;
  if (tls) {
    const reason = tlsReason(e?.message, code);
    // OpenSSL read a plain HTTP answer where the server's first TLS record should be: the hint is the value to give
    // --api (the manager's origin), not the request's URL.
    if (/wrong version number|packet length too long/i.test(reason)) return `TLS: the server does not speak TLS; if its cluster is insecure, use ${new URL(url).origin.replace(/^https:/, 'http:')}`;
    if (code !== undefined && untrustedCaCodes.has(code)) return `TLS: the server's certificate is refused: no CA this client trusts signed it: ${reason}`;
    return `TLS: ${reason}`;
  }
  if (code === 'UND_ERR_SOCKET' && url.startsWith('https:') && e?.socket?.bytesRead === 0) {
    // A TLS 1.3 server checks our certificate after the handshake; its refusal arrives as a bare close.
    return 'TLS: the server closed the connection without answering: it may have refused our client certificate, or stopped (killed or restarting)';
  }
  if (code !== undefined && !code.startsWith('UND_ERR_')) return code;
  return e?.message ?? e?.cause?.message ?? code ?? String(err);
}
