// The HTTP/2 response object every Minkube server hands fastify: node's compatibility response, except that a
// response that declares no trailers is not sent waiting for them. Node's own always opens the stream with
// waitForTrailers, so the end of every answer (END_STREAM) left in a frame and a socket write of its own after the
// body's, one more system call for the server and one more wake-up for the client per request. Without it the last
// DATA frame carries END_STREAM, and headers, body and end go out in one write (checked with strace: 2 writes per
// answer before, 1 after). A response with trailers declares them with a `trailer` header (fastify's
// reply.trailer does), and keeps node's way. And an answer that ends while its request's body is still coming lets
// the client read it before the stream is reset (linger.ts).
import { Http2ServerResponse, type ServerHttp2Stream } from 'node:http2';
import { limits } from '../lib/limits.js';
import { lingerAfterAnswer, type LingerBounds } from './linger.js';

/** The compatibility layer's "send the headers now" step, found by its description (node 20's `kBeginSend`). */
const beginSend = Object.getOwnPropertySymbols(Http2ServerResponse.prototype).find((s) => s.description === 'begin-send');

export class OneWriteResponse extends Http2ServerResponse {
  /** How much of a body still coming after the answer is dropped, for how long (a server's own: withLinger). */
  static lingerBounds: LingerBounds = { bytesMax: limits.httpLingerBytesMax, ms: limits.httpLingerMs };

  private continued = false;

  override writeContinue(): void {
    this.continued = true;
    super.writeContinue();
  }

  override end(...args: unknown[]): this {
    // A client still waiting for a 100 Continue has sent no body, and will send none: nothing to linger for.
    const waiting = this.req.headers.expect !== undefined && !this.continued;
    if (!this.writableEnded && !waiting) lingerAfterAnswer(this.req, this.stream, (this.constructor as typeof OneWriteResponse).lingerBounds);
    return (super.end as (...a: unknown[]) => this)(...args);
  }
}

/** OneWriteResponse with a server's own linger bounds. */
export function withLinger(bounds: LingerBounds): typeof OneWriteResponse {
  return class extends OneWriteResponse {
    static override lingerBounds = bounds;
  };
}

/** Whether this node's compatibility layer has the step the override needs (else responses go out as node sends them). */
export const oneWriteResponses = beginSend !== undefined;

if (beginSend !== undefined) {
  const sendHeaders = (Http2ServerResponse.prototype as unknown as Record<symbol, () => void>)[beginSend]!;
  Object.defineProperty(OneWriteResponse.prototype, beginSend, {
    value: function beginSendWithoutTrailers(this: OneWriteResponse): void {
      if (this.hasHeader('trailer')) return sendHeaders.call(this);
      const stream = this.stream;
      const proto = Object.getPrototypeOf(stream) as Pick<ServerHttp2Stream, 'respond'>;
      // Only for this call: the step builds the headers and options itself, then calls respond.
      stream.respond = (headers, options) => proto.respond.call(stream, headers, { ...options, waitForTrailers: false });
      try {
        sendHeaders.call(this);
      } finally {
        delete (stream as Partial<Pick<ServerHttp2Stream, 'respond'>>).respond;
      }
    },
  });
}
