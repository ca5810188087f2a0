// Closing a connection, or an HTTP/2 stream, that the client is still sending on, without losing the answer: a
// "lingering close", as nginx does. A socket closed with bytes unread, or that gets bytes after its close, makes the
// kernel send a reset, and a client that had not read the answer yet loses it (curl: "(55) Broken pipe", "(56)
// Connection reset by peer"; node: EPIPE, no status). So after an early answer (413 before the body, 431 in the
// middle of a long URL) our side is ended and what the client still sends is read and dropped, until it stops or a
// bound is hit; only then is the connection (or the stream) closed.
import type { IncomingMessage } from 'node:http';
import { constants as http2, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

export interface LingerBounds {
  /** Bytes read and dropped after the answer before closing anyway. */
  bytesMax: number;
  /** How long after the answer the connection or stream is closed anyway. */
  ms: number;
}

/** How often a lingering connection's bytes and time are looked at. */
const lingerCheckMs = 50;

const lingering = new WeakSet<Socket>();

/** Whether lingerThenClose has this socket: its parser's errors from now on are the dropped bytes, not news. */
export function isLingering(socket: object): boolean {
  return lingering.has(socket as Socket);
}

/**
 * Ends `socket` after what is written to it, then drops what it reads, and destroys it once the client has ended its
 * side, `doneWhen` says there is nothing more to read, or a bound is hit.
 */
export function lingerThenClose(socket: Socket, bounds: LingerBounds, doneWhen?: (close: () => void) => void): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  const fromBytes = socket.bytesRead;
  const startedMs = performance.now();
  const check = setInterval(() => {
    if (socket.bytesRead - fromBytes > bounds.bytesMax || performance.now() - startedMs >= bounds.ms) close();
  }, lingerCheckMs);
  check.unref();
  function close(): void {
    clearInterval(check);
    socket.destroy();
  }
  socket.once('close', () => clearInterval(check));
  socket.once('end', close);
  // Errors of a connection being dropped are expected (a client that resets it itself).
  socket.on('error', () => undefined);
  doneWhen?.(close);
  socket.end();
  // A socket no parser reads (a plain HTTP request to a TLS port) is read here; the bytes go nowhere.
  if (socket.isPaused()) socket.resume();
}

/**
 * Node's HTTP/1.1 server closes a connection at once after its last answer (Connection: close, a 413 refusing the
 * body, an HTTP/1.0 client): on `server`, it lingers instead while that answer's request is still arriving.
 */
export function lingerAfterLastAnswers(server: { prependListener(event: 'request', listener: (req: IncomingMessage) => void): unknown }, bounds: LingerBounds): void {
  const destroySoonOf = new WeakMap<Socket, () => void>();
  server.prependListener('request', (req: IncomingMessage) => {
    if (req.httpVersionMajor !== 1) return;
    const socket = req.socket;
    let destroySoon = destroySoonOf.get(socket);
    if (destroySoon === undefined) {
      destroySoon = socket.destroySoon.bind(socket);
      destroySoonOf.set(socket, destroySoon);
    }
    const closeNow = destroySoon;
    // Set again by every request on the connection: the last one's is the one the server closes after.
    socket.destroySoon = () => {
      if (req.complete) return closeNow();
      // Node has dumped the body (resumed it with no reader) unless something still reads it.
      req.resume();
      lingerThenClose(socket, bounds, (close) => req.once('end', close));
    };
  });
}

/**
 * An HTTP/2 answer ending while its request's body still comes: node would reset the stream (RST_STREAM NO_ERROR) at
 * once, which RFC 9113 8.1 allows, but a client that reads the reset with the answer (curl over h2c, where both come
 * in one read) drops the answer. The body is read and dropped instead, so the stream ends when the client ends it, or
 * with that reset once a bound is hit, long after the answer.
 */
export function lingerAfterAnswer(req: Http2ServerRequest, stream: ServerHttp2Stream, bounds: LingerBounds): void {
  if (stream.endAfterHeaders || req.complete || stream.destroyed) return;
  let bytes = 0;
  const close = (): void => {
    clearTimeout(timer);
    if (!stream.closed && !stream.destroyed) stream.close(http2.NGHTTP2_NO_ERROR);
  };
  const timer = setTimeout(close, bounds.ms);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > bounds.bytesMax) close();
  });
  req.resume();
}
