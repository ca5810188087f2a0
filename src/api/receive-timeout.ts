// The receive timeout of HTTP/2 requests: node bounds how long an HTTP/1.1 request's body may take to arrive (its
// server's requestTimeout), but not an HTTP/2 stream's, so a client trickling a body held its stream, and the app's
// body reader, as long as it liked. Bounded here as node bounds HTTP/1.1's, on the TLS port and the h2c one.
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { MinkubeError } from '../lib/errors.js';

export interface ReceiveBounds {
  /** From the request's headers to the end of its body. */
  receiveTimeoutMs: number;
  /** How often requests are looked at (an answer comes up to this late). */
  timeoutCheckIntervalMs: number;
}

export type RequestEmitter = { prependListener(event: 'request', listener: (req: Http2ServerRequest, res: Http2ServerResponse) => void): unknown };

/**
 * An HTTP/2 request of `server` whose body has not all arrived receiveTimeoutMs after its headers is answered
 * `408 REQUEST_TIMEOUT`, as over HTTP/1.1, and its stream closed once the answer is out (after the lingering every
 * early answer gets, linger.ts); the session goes on. The bound is on the request, not on the answer: a followed log
 * or an event stream, whose request ended with its headers, is never cut, and an answer already started is left to
 * its own bounds (lingering, for one that ended).
 */
export function boundHttp2Receive(server: RequestEmitter, bounds: ReceiveBounds): void {
  // In arrival order, so a look stops at the first request still within its time. performance.now(), not Date.now():
  // a wall-clock step forward would cut every request under way, and one back would let them hang.
  const arrivedMs = new Map<Http2ServerResponse, number>();
  let check: NodeJS.Timeout | undefined;
  const look = (): void => {
    const dueMs = performance.now() - bounds.receiveTimeoutMs;
    for (const [res, atMs] of arrivedMs) {
      if (atMs > dueMs) break;
      arrivedMs.delete(res);
      if (!bodyArrived(res.stream) && !res.headersSent) answerTimedOut(res.req, res);
    }
    if (arrivedMs.size === 0) {
      clearInterval(check);
      check = undefined;
    }
  };
  server.prependListener('request', (req, res) => {
    // HTTP/1.1 requests of the TLS server are node's to bound; most HTTP/2 ones (GET, HEAD) end with their headers.
    if (req.httpVersionMajor !== 2 || bodyArrived(req.stream)) return;
    arrivedMs.set(res, performance.now());
    req.stream.once('close', () => arrivedMs.delete(res));
    check ??= setInterval(look, bounds.timeoutCheckIntervalMs).unref();
  });
}

/** Whether the client has ended its side of the stream: its whole body is here (read by the app or not). */
function bodyArrived(stream: ServerHttp2Stream): boolean {
  return stream.endAfterHeaders || stream.destroyed || stream.state.remoteClose === 1;
}

function answerTimedOut(req: Http2ServerRequest, res: Http2ServerResponse): void {
  const error = new MinkubeError('REQUEST_TIMEOUT');
  // The app is reading the body (fastify's reader is the one to listen for its errors): the read fails with the
  // timeout, and the app answers it as any other error, with its request id and hooks.
  if (req.listenerCount('error') > 0) {
    req.emit('error', error);
    return;
  }
  // Not reading it yet (a check before the body still runs): answered here. Fastify takes no further step for a
  // request whose answer has ended, so the route's handler never runs on what came of the body.
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
