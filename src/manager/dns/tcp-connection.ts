// One DNS-over-TCP connection (RFC 7766): reads length-prefixed queries and writes their answers, bounded so that a
// client can hold neither memory nor the event loop: reading stops while answers wait unsent, a turn answers at most
// dnsTcpQueriesPerTurnMax queries, and a connection that does not read its answers, or sends no complete query, is closed.
import type { Socket } from 'node:net';
import type { Clock, Timer } from '../../lib/clock.js';
import { limits } from '../../lib/limits.js';

export interface TcpDnsBounds {
  /** Closed after this long without a complete query (bytes of an unfinished one do not count). */
  idleMs: number;
  /** Closed when answers have waited unsent (reading stopped) this long. */
  drainMs: number;
  /** Closed when more than this many bytes of answers wait unsent. */
  unsentBytesMax: number;
  /** Queries answered before the connection yields the event loop to others. */
  queriesPerTurnMax: number;
}

/** Why the server closed a connection, for its counters. */
export type TcpDnsCloseReason = 'idle' | 'undrained' | 'unsent' | 'oversized';

export interface TcpDnsHooks {
  /** The framed answer to one query's bytes, or null to send nothing. */
  respond(query: Buffer): Buffer | null;
  /** Called once when the server closes the connection (not when the client does). */
  closed(reason: TcpDnsCloseReason): void;
  /** Called when reading stops because answers wait unsent. */
  paused(): void;
  /** Called after each answer is written, with the bytes of answers now waiting unsent. */
  wrote(unsentBytes: number): void;
}

export class TcpDnsConnection {
  private buffered: Buffer = Buffer.alloc(0);
  private lastQueryMs: number;
  private idleTimer: Timer;
  private drainTimer: Timer | null = null;
  private turnScheduled = false;
  private done = false;

  constructor(
    private readonly socket: Socket,
    private readonly clock: Clock,
    private readonly bounds: TcpDnsBounds,
    private readonly hooks: TcpDnsHooks,
  ) {
    this.lastQueryMs = clock.monoMs();
    this.idleTimer = clock.setTimeout(() => this.checkIdle(), bounds.idleMs);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.pump();
    });
    socket.on('drain', () => this.onDrain());
    socket.on('close', () => this.stopTimers());
  }

  /** Answers the complete queries buffered, until output backs up or the turn's share is used. */
  private pump(): void {
    this.turnScheduled = false;
    for (let answered = 0; !this.done; answered++) {
      if (this.socket.writableNeedDrain) return this.waitForDrain();
      if (this.buffered.length < 2) break;
      // Each message is a 2-byte length and the query (RFC 1035 4.2.2); a long one is refused by closing.
      const length = this.buffered.readUInt16BE(0);
      if (length > limits.dnsQueryBytesMax) return this.close('oversized');
      if (this.buffered.length < 2 + length) break;
      if (answered >= this.bounds.queriesPerTurnMax) return this.yieldTurn();
      const query = this.buffered.subarray(2, 2 + length);
      this.buffered = this.buffered.subarray(2 + length);
      this.lastQueryMs = this.clock.monoMs();
      const framed = this.hooks.respond(query);
      if (framed === null) continue;
      this.socket.write(framed);
      this.hooks.wrote(this.socket.writableLength);
      if (this.socket.writableLength > this.bounds.unsentBytesMax) return this.close('unsent');
    }
    if (!this.done) this.socket.resume();
  }

  /** Stops reading until the client has taken the answers, and closes the connection if it does not in time. */
  private waitForDrain(): void {
    this.socket.pause();
    if (this.drainTimer !== null) return;
    this.hooks.paused();
    this.drainTimer = this.clock.setTimeout(() => this.close('undrained'), this.bounds.drainMs);
  }

  private onDrain(): void {
    this.drainTimer?.cancel();
    this.drainTimer = null;
    if (!this.turnScheduled) this.pump();
  }

  /** Lets other connections and the rest of the manager run before answering the next queries of this one. */
  private yieldTurn(): void {
    this.socket.pause();
    this.turnScheduled = true;
    setImmediate(() => {
      if (this.turnScheduled && !this.done) this.pump();
    });
  }

  private checkIdle(): void {
    if (this.done) return;
    const quietMs = this.clock.monoMs() - this.lastQueryMs;
    if (quietMs >= this.bounds.idleMs) return this.close('idle');
    this.idleTimer = this.clock.setTimeout(() => this.checkIdle(), this.bounds.idleMs - quietMs);
  }

  private close(reason: TcpDnsCloseReason): void {
    if (this.done) return;
    this.stopTimers();
    this.hooks.closed(reason);
    this.socket.destroy();
  }

  private stopTimers(): void {
    this.done = true;
    this.idleTimer.cancel();
    this.drainTimer?.cancel();
    this.drainTimer = null;
    this.buffered = Buffer.alloc(0);
  }
}
