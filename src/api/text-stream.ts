// Long answers written as they come: a followed task's output (GET /v1/tasks/:id/logs?follow=true) on the worker and
// on the manager that relays it. Bounded (at most `max` at once, past it 429 QUEUE_FULL), with the socket's
// backpressure (a slow reader slows its source; nothing queues without bound), cut when its reader stops taking it
// (stalled-reader.ts), and ended by app.close() like the event streams (a follow may never end by itself).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { MinkubeError } from '../lib/errors.js';
import { watchCredential } from './credential-watch.js';
import { defaultStallBounds, watchStall, type StallBounds } from './stalled-reader.js';
import { systemClock, type Clock } from '../lib/clock.js';

/** The abort reason of the streams a closing node ends. */
const closing = new Error('this node is closing');
/** The abort reason of a stream whose token or session no longer holds. */
const revoked = new Error('the credential of this stream no longer holds');
/** The abort reason of a stream whose reader stopped taking it. */
const stalled = new Error('the reader of this stream stopped reading');

/** HTTP/2 sessions and how many long answers each carries now (their idle timeout leaves them open meanwhile). */
const longAnswers = new WeakMap<object, number>();

/** Whether a long answer is under way on this HTTP/2 session. */
export function carriesLongAnswer(session: object): boolean {
  return (longAnswers.get(session) ?? 0) > 0;
}

function holdSession(reply: FastifyReply): () => void {
  const session = (reply.raw as { stream?: { session?: object } }).stream?.session;
  if (session === undefined) return () => undefined;
  longAnswers.set(session, (longAnswers.get(session) ?? 0) + 1);
  return () => {
    const n = (longAnswers.get(session) ?? 1) - 1;
    if (n > 0) longAnswers.set(session, n);
    else longAnswers.delete(session);
  };
}

export interface TextStreamsOptions {
  /** Whose cap a QUEUE_FULL names ('this worker', 'this manager'; default 'this node'). */
  node?: string;
  /** When a reader that stopped is cut (default defaultStallBounds). */
  stall?: StallBounds;
  clock?: Clock;
}

export class TextStreams {
  private readonly open = new Set<AbortController>();

  private readonly node: string;
  private readonly stall: StallBounds;
  private readonly clock: Clock;

  constructor(app: FastifyInstance, private readonly max: number, private readonly what: string, opts: TextStreamsOptions = {}) {
    this.node = opts.node ?? 'this node';
    this.stall = opts.stall ?? defaultStallBounds;
    this.clock = opts.clock ?? systemClock;
    app.addHook('preClose', async () => {
      for (const c of this.open) c.abort(closing);
    });
  }

  /** A signal that aborts when the client goes away or the app closes; throws QUEUE_FULL when `max` are open. */
  begin(reply: FastifyReply): AbortController {
    this.refuseWhenFull();
    const c = new AbortController();
    this.open.add(c);
    const release = holdSession(reply);
    // Cut first, then aborted: the abort lets go of the HTTP/2 session's hold, which may close the session gracefully
    // before a later reset of the stream goes out (the reader would see a normal end).
    const unwatch = watchCredential(reply.request, () => {
      cutAnswer(reply.raw);
      c.abort(revoked);
    });
    const unwatchStall = watchStall(reply.raw, (pendingBytes) => {
      reply.log.info({ pendingBytes }, `the reader of a stream of ${this.what} stopped reading: cutting it`);
      cutAnswer(reply.raw);
      c.abort(stalled);
    }, this.stall, this.clock);
    reply.raw.once('close', () => c.abort());
    c.signal.addEventListener('abort', () => {
      this.open.delete(c);
      unwatch();
      unwatchStall();
      release();
    }, { once: true });
    return c;
  }

  private refuseWhenFull(): void {
    if (this.open.size >= this.max) throw new MinkubeError('QUEUE_FULL', `${this.node} already serves ${this.max} ${this.what}; retry later`);
  }

  /**
   * begin(), then send() what open() answers. open()'s own failure (an unknown task, a worker that does not answer)
   * frees the slot and is thrown before anything is written, so the caller's error handler answers it. A HEAD takes
   * no slot: it answers what the GET would (open() is called, and its failure thrown, as for a GET), then the headers
   * alone, and the source is closed unread.
   */
  async serve(reply: FastifyReply, open: (signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>): Promise<FastifyReply> {
    if (reply.request.method === 'HEAD') {
      this.refuseWhenFull();
      const unread = new AbortController();
      try {
        await open(unread.signal);
      } finally {
        unread.abort();
      }
      return answerHead(reply, longAnswerHeaders(reply, textContentType));
    }
    const c = this.begin(reply);
    let chunks: AsyncIterable<Uint8Array>;
    try {
      chunks = await open(c.signal);
    } catch (err) {
      c.abort();
      throw err;
    }
    await this.send(reply, c, chunks);
    return reply;
  }

  /**
   * Writes chunks as a 200 text/plain answer of no set length, waiting for the socket to drain when it is full. Ends
   * the answer when they end; a source that fails part-way cuts the connection, so the client sees an incomplete
   * answer rather than a complete one that is short.
   */
  async send(reply: FastifyReply, c: AbortController, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    void reply.hijack();
    const res = reply.raw;
    res.writeHead(200, longAnswerHeaders(reply, textContentType));
    // The headers now, not with the first chunk: a quiet task's follower knows at once that it is following.
    res.flushHeaders();
    try {
      for await (const chunk of chunks) {
        if (c.signal.aborted) break;
        if (!res.write(chunk)) await drainedOrAborted(res, c.signal);
      }
      // Cut, not ended, when this node closes or the credential no longer holds: the source had not ended, and a
      // complete answer would say it had.
      if (c.signal.reason === closing || c.signal.reason === revoked || c.signal.reason === stalled) cutAnswer(res);
      else if (!res.destroyed) res.end();
    } catch (err) {
      reply.log.info({ err }, `a stream of ${this.what} was cut`);
      cutAnswer(res);
    } finally {
      c.abort();
    }
  }
}

const textContentType = 'text/plain; charset=utf-8';

/**
 * Ends a long answer so that its reader can tell it from a complete one: HTTP/1.1 closes the connection before the
 * chunked body's end; HTTP/2 resets the stream with INTERNAL_ERROR. Not res.destroy() nor stream.close(code) there:
 * both end the writable side first, and with no trailers awaited (h2-response.ts) that sends END_STREAM, which the
 * client reads as a normal end before the reset. Destroyed with an error, the stream is reset and nothing else.
 */
export function cutAnswer(res: FastifyReply['raw']): void {
  const stream = (res as { stream?: { destroy(err?: Error): void; destroyed?: boolean } }).stream;
  if (stream !== undefined) {
    if (stream.destroyed !== true) stream.destroy(new Error('this answer is cut'));
    return;
  }
  res.destroy();
}

/** The headers of a long answer: the reply's own (x-request-id, CORS), its type, and no caching or buffering on the way. */
export function longAnswerHeaders(reply: FastifyReply, contentType: string): Record<string, string> {
  return { ...(reply.getHeaders() as Record<string, string>), 'content-type': contentType, 'cache-control': 'no-store', 'x-accel-buffering': 'no' };
}

/**
 * A HEAD of a long answer: 200 with its headers, ended at once. By hand, as the GET is (hijacked): over HTTP/1.1 node
 * holds a response's headers back until its first body byte, which a HEAD never gets, so a HEAD that went the GET's
 * way never answered and held its slot for good.
 */
export function answerHead(reply: FastifyReply, headers: Record<string, string>): FastifyReply {
  void reply.hijack();
  reply.raw.writeHead(200, headers);
  reply.raw.end();
  return reply;
}

/** Resolves when the response drains, closes or fails, or the signal aborts; leaves no listener behind. */
function drainedOrAborted(res: FastifyReply['raw'], signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      res.off('error', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    res.on('error', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
