// The answers a server has written and its clients have not yet taken, counted across every connection. One
// connection's pipelined requests already wait behind its unread answers (takeTurn in http.ts), but each connection
// still holds one: 200 connections that asked for a 2.5 MB task page each and never read made a manager hold about
// 500 MB until each was cut off, 30 s later. Past answersBytesMax in all, the connections whose answers have waited
// longest (at least ageMsMin: an answer still being written is not a slow reader) are closed until the rest fit.
// HTTP/2 has no turns: one session's streams are answered at once, so a session's unsent answers have a bound of
// their own (sessionBytesMax), and past either bound it is the whole session that is closed, as HTTP/1.1's connection.
import type { Http2Session } from 'node:http2';
import type { FastifyReply } from 'fastify';

export interface UnreadBounds {
  /** Bytes of written, unfinished answers a server holds before it closes the oldest's connections. */
  answersBytesMax: number;
  /** An answer unfinished for less than this is never the one closed. */
  ageMsMin: number;
  /** Bytes of one HTTP/2 session's unfinished answers, past which it is closed (a single answer alone never is). */
  sessionBytesMax: number;
}

/** Answers smaller than this are not counted: a socket's own buffer takes them. */
export const unreadCountedBytesMin = 16 * 1024;

interface Unread {
  readonly bytes: number;
  readonly sinceMs: number;
  /** Closes the answer's connection: HTTP/1.1's socket, or HTTP/2's whole session. */
  readonly close: () => void;
}

/** One HTTP/2 session's answers written and not yet finished, small ones included. */
interface SessionUnsent {
  bytes: number;
  answers: number;
}

/** The HTTP/2 session an answer goes out on, or undefined over HTTP/1.1. */
function sessionOf(reply: FastifyReply): Http2Session | undefined {
  return (reply.raw as { stream?: { session?: Http2Session } }).stream?.session;
}

export class UnreadAnswers {
  /** In the order they were written: the first is the one waiting longest. */
  private readonly unread = new Set<Unread>();
  private bytes = 0;
  private readonly sessions = new WeakMap<Http2Session, SessionUnsent>();
  /** Set while only young answers stand between the server and its budget: it looks again once they are old enough. */
  private recheck: NodeJS.Timeout | null = null;
  /** Connections (HTTP/2: sessions) closed because their answers waited while the server held too much. */
  closed = 0;
  /** HTTP/2 sessions closed because they alone held more than sessionBytesMax unsent. */
  sessionsClosed = 0;

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
    const session = sessionOf(reply);
    if (session !== undefined && this.sessionWritten(session, reply, bytes)) return;
    if (bytes < unreadCountedBytesMin) return;
    const close = session === undefined ? () => reply.raw.destroy() : () => session.destroy();
    const entry: Unread = { bytes, sinceMs: this.nowMs(), close };
    this.unread.add(entry);
    this.bytes += bytes;
    reply.raw.once('close', () => this.forget(entry));
    if (this.bytes > this.bounds.answersBytesMax) this.shed();
  }

  /** Counts an answer against its session until its stream closes; true when that closed the session. */
  private sessionWritten(session: Http2Session, reply: FastifyReply, bytes: number): boolean {
    let unsent = this.sessions.get(session);
    if (unsent === undefined) this.sessions.set(session, (unsent = { bytes: 0, answers: 0 }));
    const counted = unsent;
    counted.bytes += bytes;
    counted.answers++;
    reply.raw.once('close', () => {
      counted.bytes -= bytes;
      counted.answers--;
    });
    if (counted.bytes <= this.bounds.sessionBytesMax || counted.answers < 2) return false;
    this.sessionsClosed++;
    // Its streams close with it, each answer's buffers with them (and their entries here, on their 'close').
    session.destroy();
    return true;
  }

  private forget(entry: Unread): void {
    if (this.unread.delete(entry)) this.bytes -= entry.bytes;
  }

  /** Closes the connections of the longest-waiting answers until the rest fit (or only young ones are left). */
  private shed(): void {
    const oldestMs = this.nowMs() - this.bounds.ageMsMin;
    for (const entry of this.unread) {
      if (this.bytes <= this.bounds.answersBytesMax) return;
      if (entry.sinceMs > oldestMs) {
        // Answers written in one burst are all young: without another write nothing would look again.
        this.recheck ??= setTimeout(() => {
          this.recheck = null;
          if (this.bytes > this.bounds.answersBytesMax) this.shed();
        }, entry.sinceMs - oldestMs + 1).unref();
        return;
      }
      this.forget(entry);
      this.closed++;
      entry.close();
    }
  }
}
