// One HTTP request per connection (no pooling, no hidden retries), classified the way the history needs it: an
// answer, a request that never left (connection refused, or a TLS handshake that never finished: no effect), or one
// whose fate is unknown (timeout, reset after the request could have left).
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';

export type Outcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: AnswerBody }
  | { readonly kind: 'refused'; readonly error: string }
  | { readonly kind: 'unknown'; readonly error: string };

/** A JSON answer, loosely typed: callers read the fields the route documents. */
export type AnswerBody = Record<string, unknown> & { error?: { code?: string; message?: string } };

/** How a client reaches a closed cluster: https trusting the cluster's CA, and the admin token. */
export interface Access {
  readonly caCertPem: string;
  readonly token: string;
}

export interface RequestOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs: number;
  /** https and a bearer token; plain http without. */
  readonly access?: Access | null;
}

export function send(address: string, method: string, path: string, o: RequestOptions): Promise<Outcome> {
  const [hostname, port] = splitAddress(address);
  const payload = o.body === undefined ? null : JSON.stringify(o.body);
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const done = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const headers: Record<string, string> = { ...o.headers, connection: 'close' };
    if (payload !== null) headers['content-type'] = 'application/json';
    const access = o.access ?? null;
    if (access !== null) headers.authorization = `Bearer ${access.token}`;
    // Under TLS nothing of the request leaves before the handshake ends: a failure before that has no effect.
    let handshaken = access === null;
    const onAnswer = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => done({ kind: 'unknown', error: err.message }));
      res.on('end', () => done({ kind: 'answer', status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks).toString('utf8')) }));
    };
    const options = { hostname, port, method, path, agent: false as const, headers };
    let req: ClientRequest;
    if (access === null) req = httpRequest(options, onAnswer);
    else {
      // tls.connect takes `session` through https.request's options; the type does not list it.
      const session = sessions.get(address);
      const tlsOptions: HttpsRequestOptions & { session?: Buffer } = { ...options, ca: access.caCertPem, ...(session === undefined ? {} : { session }) };
      req = httpsRequest(tlsOptions, onAnswer);
      req.once('socket', (socket) => {
        const tls = socket as TLSSocket;
        tls.once('secureConnect', () => (handshaken = true));
        tls.on('session', (session: Buffer) => remember(address, session));
      });
    }
    const timer = setTimeout(() => {
      const error = `no answer within ${o.timeoutMs} ms`;
      done(handshaken ? { kind: 'unknown', error } : { kind: 'refused', error: `${error} (TLS handshake unfinished)` });
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Refused at connect, or the handshake failed: the request never reached the server. Anything later may have been acted on.
      if (err.code === 'ECONNREFUSED' || !handshaken) done({ kind: 'refused', error: err.code ?? err.message });
      else done({ kind: 'unknown', error: err.code ?? err.message });
    });
    req.end(payload ?? undefined);
  });
}

/**
 * The last TLS session ticket per address, so that the next connection resumes instead of a full handshake (one
 * connection per request would otherwise spend most of the clients' and managers' CPU on handshakes).
 */
const sessions = new Map<string, Buffer>();
const sessionsMax = 64;

function remember(address: string, session: Buffer): void {
  if (!sessions.has(address) && sessions.size >= sessionsMax) sessions.delete(sessions.keys().next().value!);
  sessions.set(address, session);
}

function parseBody(text: string): AnswerBody {
  if (text.length === 0) return {};
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as AnswerBody) : { value: v };
  } catch {
    return { text };
  }
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

/** The error code of an answer, if it has one. */
export function errorCode(o: Outcome): string | undefined {
  return o.kind === 'answer' ? o.body.error?.code : undefined;
}
