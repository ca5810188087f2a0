// The answers a server has written and its clients have not yet taken, counted across every connection. One
// connection's pipelined requests already wait behind its unread answers (takeTurn in http.ts), but each connection
// still holds one: 200 connections that asked for a 2.5 MB task page each and never read made a manager hold about
// 500 MB until each was cut off, 30 s later. Past answersBytesMax in all, the connections whose answers have waited
// longest (at least ageMsMin: an answer still being written is not a slow reader) are closed until the rest fit.
import type { FastifyReply } from 'fastify';

export interface UnreadBounds {
  /** Bytes of written, unfinished answers a server holds before it closes the oldest's connections. */
  answersBytesMax: number;
  /** An answer unfinished for less than this is never the one closed. */
  ageMsMin: number;
}

/** Answers smaller than this are not counted: a socket's own buffer takes them. */
export const unreadCountedBytesMin = 16 * 1024;

interface Unread {
  readonly bytes: number;
  readonly sinceMs: number;
  readonly reply: FastifyReply;
}

export class UnreadAnswers {
  /** In the order they were written: the first is the one waiting longest. */
  private readonly unread = new Set<Unread>();
  private bytes = 0;
  /** Connections (or HTTP/2 streams) closed because their answers waited while the server held too much. */
  closed = 0;

  constructor(
    private readonly bounds: UnreadBounds,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Bytes held in answers not yet finished. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** An answer of `payload` is about to be written (fastify's onSend); it counts until its response closes. */
  written(reply: FastifyReply, payload: unknown): void {
    const bytes = typeof payload === 'string' ? payload.length : Buffer.isBuffer(payload) ? payload.length : 0;
    if (bytes < unreadCountedBytesMin) return;
    const entry: Unread = { bytes, sinceMs: this.nowMs(), reply };
    this.unread.add(entry);
    this.bytes += bytes;
    reply.raw.once('close', () => this.forget(entry));
    if (this.bytes > this.bounds.answersBytesMax) this.shed();
  }

  private forget(entry: Unread): void {
    if (this.unread.delete(entry)) this.bytes -= entry.bytes;
  }

  /** Closes the connections of the longest-waiting answers until the rest fit (or only young ones are left). */
  private shed(): void {
    const oldestMs = this.nowMs() - this.bounds.ageMsMin;
    for (const entry of this.unread) {
      if (this.bytes <= this.bounds.answersBytesMax || entry.sinceMs > oldestMs) return;
      this.forget(entry);
      this.closed++;
      // HTTP/1.1: the connection; HTTP/2: the stream alone (its session's other streams go on).
      entry.reply.raw.destroy();
    }
  }
}
