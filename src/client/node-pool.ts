// A connection pool on node's own http(s) Agent with the few calls of undici's Agent that HttpClient makes (request,
// close, destroy), for short-lived processes such as the CLI: node's HTTP parser is built in, while undici compiles
// its WebAssembly one with its first connection (about a quarter of a second of CPU, more than the rest of a command).
// Its failures are shaped as undici's, so HttpClient's one error mapping reads both.
import type { Agent as HttpAgent, ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Agent as PlainAgent, request as plainRequest } from 'node:http';
import { createSecureContext, type PeerCertificate } from 'node:tls';

export interface NodePoolOptions {
  connections: number;
  connect?: {
    /** TLS: the CA that signs the server's certificate (https origins), and our own certificate and key. */
    ca?: string;
    cert?: string;
    key?: string;
    checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
    /** How long the TCP connect may take: a connection not made by then fails as undici's connect timeout does. */
    timeout?: number;
    /**
     * How long a new https connection's TLS handshake may take once its TCP connect is made: one not finished by then
     * fails as undici's connect timeout does (undici's covers connect and handshake together). Nothing of the request
     * leaves before the handshake finishes, so such a request was never sent.
     */
    handshakeTimeout?: number;
    /** false: any server certificate is accepted (as undici's connect option; HttpClientOptions.verifyServer). */
    rejectUnauthorized?: boolean;
  };
  /** The source address of every connection (as undici's Agent option). */
  localAddress?: string;
}

/** undici's error for a connection not made (or not secured) in time: HttpClient counts it as a request never sent. */
class ConnectTimeoutError extends Error {
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';
}

export interface NodePoolRequest {
  origin: string;
  path: string;
  method: string;
  headers: Readonly<Record<string, string>>;
  body: string | Uint8Array | null;
  signal: AbortSignal;
}

/** The answer's body, read once, as undici's body mixin reads it: whole, or as it comes. */
export interface NodePoolBody extends AsyncIterable<Uint8Array> {
  text(): Promise<string>;
  bytes(): Promise<Uint8Array>;
}

export interface NodePoolResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: NodePoolBody;
}

/** undici's error for a connection closed before the answer was complete ('other side closed'). */
class SocketError extends Error {
  readonly code = 'UND_ERR_SOCKET';
  constructor(readonly socket: { bytesRead: number }) {
    super('other side closed');
  }
}

export class NodePool {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;
  private underway = 0;
  private idle: (() => void) | null = null;
  private destroyed = false;
  private readonly connectTimeoutMs: number | undefined;
  private readonly handshakeTimeoutMs: number | undefined;

  constructor(o: NodePoolOptions) {
    const c = o.connect;
    const common = { keepAlive: true, maxSockets: o.connections, ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }) };
    this.http = new PlainAgent(common);
    // One TLS context for every connection (the CA parsed once): node would make one per connection otherwise.
    const tls = c?.ca === undefined ? {} : { secureContext: createSecureContext({ ca: c.ca, ...(c.cert === undefined ? {} : { cert: c.cert, key: c.key }) }), ...(c.checkServerIdentity === undefined ? {} : { checkServerIdentity: c.checkServerIdentity }) };
    this.https = new HttpsAgent({ ...common, ...tls, ...(c?.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}) });
    this.connectTimeoutMs = c?.timeout;
    this.handshakeTimeoutMs = c?.handshakeTimeout;
  }

  async request(r: NodePoolRequest): Promise<NodePoolResponse> {
    if (this.destroyed) throw new Error('the pool is closed');
    // Under way until its answer's body is read (or the connection is gone): close() waits for that.
    this.underway++;
    const done = (): void => {
      if (--this.underway === 0) this.idle?.();
    };
    try {
      return await this.exchange(r, done);
    } catch (err) {
      done();
      throw err;
    }
  }

  /** Once the requests under way have their answers: destroys the pool. */
  async close(): Promise<void> {
    if (this.underway > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.destroy();
  }

  destroy(): Promise<void> {
    this.destroyed = true;
    this.http.destroy();
    this.https.destroy();
    return Promise.resolve();
  }

  /**
   * A new connection gets connectTimeoutMs for its TCP connect and then, over https, handshakeTimeoutMs for its TLS
   * handshake; past either it is destroyed with a ConnectTimeoutError. A pooled one is open already. The handshake's
   * bound is what makes a frozen server (SIGSTOP: the kernel still completes the TCP connect, nobody answers the
   * ClientHello) a request never sent rather than one that timed out with its outcome unknown. Over plain HTTP the
   * request is written at connect, so a server that stops answering after that leaves its outcome unknown.
   */
  private boundOpening(socket: Socket, https: boolean): void {
    if (!socket.connecting) return;
    const { connectTimeoutMs, handshakeTimeoutMs } = this;
    let timer: NodeJS.Timeout | undefined;
    const clear = (): void => clearTimeout(timer);
    const failAfter = (ms: number | undefined, message: string): void => {
      clear();
      if (ms !== undefined) timer = setTimeout(() => socket.destroy(new ConnectTimeoutError(message)), ms);
    };
    failAfter(connectTimeoutMs, `could not connect within ${connectTimeoutMs} ms`);
    socket.once('connect', () => {
      // A busy server may be slow to finish a handshake, which connectTimeoutMs does not cover: handshakeTimeoutMs does.
      if (https) failAfter(handshakeTimeoutMs, `connected, but the TLS handshake did not finish within ${handshakeTimeoutMs} ms: the server accepts connections and answers nothing (stopped, or overloaded)`);
      else clear();
    });
    // node emits it as the handshake ends, before it writes the request's bytes held back behind the handshake: a timer
    // that fires first has nothing of the request on the wire.
    socket.once('secureConnect', clear);
    socket.once('close', clear);
  }

  /** Sends; resolves with the headers. The caller reads every body it asks for (whole, or to its end). */
  private exchange(r: NodePoolRequest, bodyDone: () => void): Promise<NodePoolResponse> {
    const https = r.origin.startsWith('https:');
    const send = https ? httpsRequest : plainRequest;
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body !== null) headers['content-length'] = typeof r.body === 'string' ? Buffer.byteLength(r.body) : r.body.byteLength;
    return new Promise((resolve, reject) => {
      let req: ClientRequest | undefined;
      // Aborted: the signal's reason, as undici rejects (HttpClient's deadline and the caller's abort set it).
      const reason = (err: Error): Error => (r.signal.aborted ? (r.signal.reason as Error) : err);
      try {
        req = send(r.origin + r.path, { method: r.method, headers, agent: https ? this.https : this.http, signal: r.signal });
      } catch (err) {
        reject(reason(err as Error));
        return;
      }
      req.once('socket', (socket: Socket) => this.boundOpening(socket, https));
      req.once('error', (err: Error & { code?: string }) => {
        reject(reason(err.code === 'ECONNRESET' && err.message === 'socket hang up' ? new SocketError({ bytesRead: req?.socket?.bytesRead ?? 0 }) : err));
      });
      req.once('response', (res: IncomingMessage) => {
        res.once('close', bodyDone);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: new ResponseBody(res, reason) });
      });
      req.end(r.body ?? undefined);
    });
  }
}

/** An IncomingMessage read whole (text, bytes) or as it comes; a connection cut before its end is a SocketError. */
class ResponseBody implements NodePoolBody {
  constructor(
    private readonly res: IncomingMessage,
    private readonly reason: (err: Error) => Error,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const { res } = this;
    try {
      for await (const chunk of res) yield chunk as Buffer;
    } catch (err) {
      throw this.reason(res.complete ? (err as Error) : new SocketError({ bytesRead: res.socket?.bytesRead ?? 0 }));
    }
    if (!res.complete) throw this.reason(new SocketError({ bytesRead: res.socket?.bytesRead ?? 0 }));
  }

  async bytes(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const chunk of this) parts.push(chunk);
    const all = Buffer.concat(parts);
    return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  }

  async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString('utf8');
  }
}
