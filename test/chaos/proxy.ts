// A fault-injecting TCP proxy for one directed link between managers, and the set of them that makes partitions.
// Modes switch at runtime: pass, drop (hold or destroy what is open, hold or refuse what comes) and delay.
import { connect, createServer, type Server, type Socket } from 'node:net';

export type LinkMode =
  | { readonly kind: 'pass' }
  /**
   * A cut link. `existing: 'hold'` freezes open connections without losing a byte (a partition TCP outlives: the
   * backlog arrives late, after the heal); 'destroy' resets them. `incoming: 'hold'` accepts and says nothing until
   * the heal; 'refuse' closes new connections at once.
   */
  | { readonly kind: 'drop'; readonly existing: 'hold' | 'destroy'; readonly incoming: 'hold' | 'refuse' }
  /** Every chunk arrives delayMs (plus up to jitterMs) late, in order. */
  | { readonly kind: 'delay'; readonly delayMs: number; readonly jitterMs?: number };

export const passMode: LinkMode = { kind: 'pass' };

/** Queued bytes per direction before the reading side is paused (backpressure instead of unbounded buffering). */
const queueBytesMax = 4 * 1024 * 1024;

/** One direction of one proxied connection: chunks read from `from`, due at a time, written to `to` in order. */
class Direction {
  readonly queue: { dueMs: number; chunk: Buffer }[] = [];
  queueBytes = 0;
  ended = false;
  timer: NodeJS.Timeout | null = null;
  waitingDrain = false;

  constructor(
    readonly from: Socket,
    readonly to: Socket,
    private readonly pair: Pair,
  ) {}

  push(chunk: Buffer): void {
    const mode = this.pair.proxy.mode;
    const delayMs = mode.kind === 'delay' ? mode.delayMs + Math.random() * (mode.jitterMs ?? 0) : 0;
    const lastDueMs = this.queue.at(-1)?.dueMs ?? 0;
    this.queue.push({ dueMs: Math.max(performance.now() + delayMs, lastDueMs), chunk });
    this.queueBytes += chunk.length;
    if (this.queueBytes > queueBytesMax) this.from.pause();
    this.pump();
  }

  /** Writes every chunk that is due, unless the link holds or the writer is backed up; arms a timer for the next. */
  pump(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pair.holding() || this.waitingDrain || this.to.destroyed) return;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= now) {
      const { chunk } = this.queue.shift()!;
      this.queueBytes -= chunk.length;
      if (!this.to.write(chunk)) {
        this.waitingDrain = true;
        this.to.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.pump(), this.queue[0]!.dueMs - now);
      return;
    }
    if (this.ended) this.to.end();
    else if (this.from.isPaused()) this.from.resume();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** A client connection and its upstream; the upstream is dialed only once the link lets the connection through. */
class Pair {
  upstream: Socket | null = null;
  private down: Direction | null = null;
  private up: Direction | null = null;
  private closed = false;
  /** Bytes the client sent before the upstream existed (a held new connection). */
  private early: Buffer[] = [];

  constructor(
    readonly proxy: FaultProxy,
    readonly client: Socket,
  ) {
    client.on('error', () => this.close());
    client.on('close', () => this.close());
    client.on('data', (chunk: Buffer) => (this.up === null ? this.early.push(chunk) : this.up.push(chunk)));
    client.on('end', () => {
      if (this.up === null) return this.close();
      this.up.ended = true;
      this.up.pump();
    });
  }

  holding(): boolean {
    return this.proxy.mode.kind === 'drop';
  }

  /** Dials the target and starts moving bytes. */
  open(): void {
    if (this.closed || this.upstream !== null) return;
    const upstream = connect({ host: this.proxy.target.host, port: this.proxy.target.port, noDelay: true });
    this.upstream = upstream;
    this.up = new Direction(this.client, upstream, this);
    this.down = new Direction(upstream, this.client, this);
    upstream.on('error', () => this.close());
    upstream.on('close', () => this.close());
    upstream.on('data', (chunk: Buffer) => this.down!.push(chunk));
    upstream.on('end', () => {
      this.down!.ended = true;
      this.down!.pump();
    });
    for (const chunk of this.early) this.up.push(chunk);
    this.early = [];
    this.client.resume();
  }

  /** The link's mode changed. */
  apply(mode: LinkMode): void {
    if (mode.kind === 'drop') {
      if (mode.existing === 'destroy') return this.close();
      this.client.pause();
      this.upstream?.pause();
      return;
    }
    if (this.upstream === null) return this.open();
    this.up?.pump();
    this.down?.pump();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.up?.stop();
    this.down?.stop();
    this.client.destroy();
    this.upstream?.destroy();
    this.proxy.forget(this);
  }
}

export interface ProxyCounters {
  accepted: number;
  refused: number;
  destroyed: number;
}

export interface FaultProxyOptions {
  readonly target: { readonly host: string; readonly port: number };
  readonly listenHost?: string;
  /** 0 (default): any free port. */
  readonly listenPort?: number;
}

export class FaultProxy {
  private current: LinkMode = passMode;
  readonly counters: ProxyCounters = { accepted: 0, refused: 0, destroyed: 0 };
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    readonly target: { readonly host: string; readonly port: number },
  ) {}

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ noDelay: true, pauseOnConnect: true });
    const proxy = new FaultProxy(server, opts.target);
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.listenHost ?? '127.0.0.1', port: opts.listenPort ?? 0 }, () => resolve());
    });
    return proxy;
  }

  get mode(): LinkMode {
    return this.current;
  }

  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a !== 'object') throw new Error('the proxy is not listening');
    return a.port;
  }

  get address(): string {
    const a = this.server.address();
    if (a === null || typeof a !== 'object') throw new Error('the proxy is not listening');
    return `${a.address}:${a.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  setMode(mode: LinkMode): void {
    this.current = mode;
    if (mode.kind === 'drop' && mode.existing === 'destroy') this.counters.destroyed += this.pairs.size;
    for (const pair of [...this.pairs]) pair.apply(mode);
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const mode = this.mode;
    if (mode.kind === 'drop' && mode.incoming === 'refuse') {
      this.counters.refused++;
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    const pair = new Pair(this, socket);
    this.pairs.add(pair);
    if (mode.kind !== 'drop') pair.open();
  }

  forget(pair: Pair): void {
    this.pairs.delete(pair);
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) pair.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The directed links between managers, each with a proxy per kind of traffic (Raft, and HTTP between managers). */
export class ChaosNetwork {
  /** `${from}->${to}` -> the proxies that carry from's traffic to `to`. */
  private readonly links = new Map<string, FaultProxy[]>();
  private readonly cut = new Set<string>();

  add(from: string, to: string, proxy: FaultProxy): void {
    const key = linkKey(from, to);
    this.links.set(key, [...(this.links.get(key) ?? []), proxy]);
  }

  /** Cuts the two directions between a and b (a TCP connection carries both, so one-way cuts are not offered). */
  cutBetween(a: string, b: string, mode: Extract<LinkMode, { kind: 'drop' }>): void {
    for (const key of [linkKey(a, b), linkKey(b, a)]) {
      this.cut.add(key);
      for (const p of this.links.get(key) ?? []) p.setMode(mode);
    }
  }

  /** Cuts every link between nodes of different groups; nodes in no group keep all their links. */
  partition(groups: readonly (readonly string[])[], mode: Extract<LinkMode, { kind: 'drop' }>): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i]!) for (const b of groups[j]!) this.cutBetween(a, b, mode);
      }
    }
  }

  delayBetween(a: string, b: string, delayMs: number, jitterMs: number): void {
    for (const key of [linkKey(a, b), linkKey(b, a)]) {
      for (const p of this.links.get(key) ?? []) p.setMode({ kind: 'delay', delayMs, jitterMs });
    }
  }

  heal(): void {
    this.cut.clear();
    for (const proxies of this.links.values()) for (const p of proxies) p.setMode(passMode);
  }

  /** The cut links, as 'a->b'. */
  cutLinks(): string[] {
    return [...this.cut].sort();
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].flat().map((p) => p.close()));
  }
}

function linkKey(from: string, to: string): string {
  return `${from}->${to}`;
}
