// One HTTP request per connection (no pooling, no hidden retries), classified the way the history needs it: an
// answer, a request that never left (connection refused: no effect), or one whose fate is unknown (timeout, reset).
import { request as httpRequest } from 'node:http';

export type Outcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: AnswerBody }
  | { readonly kind: 'refused'; readonly error: string }
  | { readonly kind: 'unknown'; readonly error: string };

/** A JSON answer, loosely typed: callers read the fields the route documents. */
export type AnswerBody = Record<string, unknown> & { error?: { code?: string; message?: string } };

export interface RequestOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs: number;
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
    const req = httpRequest({ hostname, port, method, path, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => done({ kind: 'unknown', error: err.message }));
      res.on('end', () => done({ kind: 'answer', status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks).toString('utf8')) }));
    });
    const timer = setTimeout(() => {
      done({ kind: 'unknown', error: `no answer within ${o.timeoutMs} ms` });
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Refused at connect: the request never reached the server. Anything later may have been acted on.
      done(err.code === 'ECONNREFUSED' ? { kind: 'refused', error: err.code } : { kind: 'unknown', error: err.code ?? err.message });
    });
    req.end(payload ?? undefined);
  });
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
