// A connection pool on node's own http(s) Agent with the few calls of undici's Agent that HttpClient makes (request,
// close, destroy), for short-lived processes such as the CLI: node's HTTP parser is built in, while undici compiles
// its WebAssembly one with its first connection (about a quarter of a second of CPU, more than the rest of a command).
// Its failures are shaped as undici's, so HttpClient's one error mapping reads both.
import type { Agent as HttpAgent, ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Agent as PlainAgent, request as plainRequest } from 'node:http';
import { createSecureContext, type PeerCertificate } from 'node:tls';

export interface NodePoolOptions {
  connections: number;
  connect?: {
    ca: string;
    cert?: string;
    key?: string;
    checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
  };
}

export interface NodePoolRequest {
  origin: string;
  path: string;
  method: string;
  headers: Readonly<Record<string, string>>;
  body: string | Uint8Array | null;
  signal: AbortSignal;
}

/** The answer's body, read once, as undici's body mixin reads it. */
export interface NodePoolBody {
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

  constructor(o: NodePoolOptions) {
    const common = { keepAlive: true, maxSockets: o.connections };
    this.http = new PlainAgent(common);
    // One TLS context for every connection (the CA parsed once): node would make one per connection otherwise.
    const c = o.connect;
    const tls = c === undefined ? {} : { secureContext: createSecureContext({ ca: c.ca, ...(c.cert === undefined ? {} : { cert: c.cert, key: c.key }) }), ...(c.checkServerIdentity === undefined ? {} : { checkServerIdentity: c.checkServerIdentity }) };
    this.https = new HttpsAgent({ ...common, ...tls });
  }

  async request(r: NodePoolRequest): Promise<NodePoolResponse> {
    if (this.destroyed) throw new Error('the pool is closed');
    this.underway++;
    try {
      return await this.exchange(r);
    } finally {
      if (--this.underway === 0) this.idle?.();
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

  /** Sends, and reads the whole answer (a caller reads every body it asks for). */
  private exchange(r: NodePoolRequest): Promise<NodePoolResponse> {
    const https = r.origin.startsWith('https:');
    const send = https ? httpsRequest : plainRequest;
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body !== null) headers['content-length'] = typeof r.body === 'string' ? Buffer.byteLength(r.body) : r.body.byteLength;
    return new Promise((resolve, reject) => {
      let req: ClientRequest | undefined;
      // Aborted: the signal's reason, as undici rejects (HttpClient's deadline and the caller's abort set it).
      const fail = (err: Error): void => reject(r.signal.aborted ? (r.signal.reason as Error) : err);
      try {
        req = send(r.origin + r.path, { method: r.method, headers, agent: https ? this.https : this.http, signal: r.signal });
      } catch (err) {
        fail(err as Error);
        return;
      }
      req.once('error', (err: Error & { code?: string }) => {
        fail(err.code === 'ECONNRESET' && err.message === 'socket hang up' ? new SocketError({ bytesRead: req?.socket?.bytesRead ?? 0 }) : err);
      });
      req.once('response', (res: IncomingMessage) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.once('error', fail);
        res.once('aborted', () => fail(new SocketError({ bytesRead: res.socket?.bytesRead ?? 0 })));
        res.once('end', () => {
          const all = Buffer.concat(parts);
          resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: { text: () => Promise.resolve(all.toString('utf8')), bytes: () => Promise.resolve(new Uint8Array(all.buffer, all.byteOffset, all.byteLength)) } });
        });
      });
      req.end(r.body ?? undefined);
    });
  }
}
