// Transport over TCP: one persistent connection per pair of managers (the smaller id dials and says hello, both
// directions share the socket), length-prefixed msgpack frames (codec.ts), bounded per-peer send queues flushed once
// per tick, reconnects with exponential backoff and full jitter. A bad frame closes only the connection it came on.
// With `tls`, every connection is mutual TLS and the peer's certificate must name the id it claims (verifyPeer); an
// accepted connection whose certificate is no manager's this node takes is closed before a byte of it is read, and
// until its hello is accepted a connection may send one frame of at most peerHelloBytesMax.
// A node this one does not know (a member added while this one was down, whose config entry it has not received
// yet) is answered all the same: its hello is accepted when its certificate proves it a manager of this cluster
// naming that id (under `insecure`, where nothing is proved, on its word, as every id is), as a learned peer that
// lives as long as its connection. The larger id waits to be dialed; one that waits in vain knocks (a hello with
// `knock` and its address: "dial me"), so a node that does not know it dials it back. The Raft core decides what a
// node outside its configuration gets.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type PeerCertificate, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { backoffCeilingMs, fullJitterMs } from '../lib/backoff.js';
import { listenFailed, MinkubeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits as defaultLimits } from '../lib/limits.js';
import { systemRandom, type Random } from '../lib/random.js';
import type { Message } from '../raft/types.js';
import { FrameDecoder, decodePayload, encodeFrame, estimateMessageBytes, payloadBytes, WIRE_VERSION, type Frame } from './codec.js';
import { newTransportCounters, type Transport, type TransportCounters } from './types.js';

export interface TransportLimits {
  readonly frameBytesMax: number;
  /** The first frame on an accepted connection (the hello): a longer one closes the connection unread. */
  readonly peerHelloBytesMax: number;
  readonly peerSendQueueMessagesMax: number;
  readonly peerSendQueueBytesMax: number;
  readonly peerQueueStaleMs: number;
}

export interface TcpTransportOptions {
  readonly id: NodeId;
  /** host:port to listen on; port 0 picks a free port (see `address`). */
  readonly listen: string;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly logger: Logger;
  /** The node's own host, bound as the source of outgoing connections (so nodes can be partitioned by address). */
  readonly localAddress?: string;
  readonly limits?: Partial<TransportLimits>;
  readonly reconnectBaseMs?: number;
  readonly reconnectMaxMs?: number;
  readonly connectTimeoutMs?: number;
  /** How long an accepted connection may stay silent before its hello. */
  readonly helloTimeoutMs?: number;
  /** Mutual TLS; without it, plaintext TCP (the config's `insecure: true`). */
  readonly tls?: TransportTls;
  /** The redial jitter's source (default systemRandom); tests inject a seeded one. */
  readonly random?: Random;
  /** The address peers reach this node at, sent in hellos (default the address listened on). */
  readonly advertiseAddress?: string;
  /** How long a peer that should dial this node may leave it unconnected before this node knocks (default 2 s). */
  readonly knockAfterMs?: number;
  /** An open connection that brings nothing for this long is closed and dialed again (limits.peerSilenceMsMax). */
  readonly silenceMsMax?: number;
  /** An open connection that carried nothing out for this long gets an empty frame (limits.peerPingIntervalMs). */
  readonly pingIntervalMs?: number;
}

export interface TransportTls {
  readonly caCertPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  /**
   * Whether the certificate a peer presented (already verified against the CA by TLS) may speak as `peerId`: null
   * when it may, else the reason. Called for every accepted hello and every dialed connection; and with `peerId`
   * null right after an accepted connection's handshake, before anything of it is read: may it speak as the manager
   * its certificate names (a worker's, or a removed manager's, may not).
   */
  readonly verifyPeer: (cert: PeerCertificate, peerId: NodeId | null) => string | null;
}

/** An empty raft frame: what a connection carries when it has nothing else (any node decodes it as no messages). */
const pingFrame = encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: [] });

type ConnState = 'handshake' | 'open' | 'closed';

/** One socket and its read side. `peer` is known from the start when we dialed, after the hello when we accepted. */
class Connection {
  state: ConnState = 'handshake';
  readonly decoder: FrameDecoder;
  openedAtMs = 0;
  framesReceived = 0;
  /** Set when we closed it for a bad frame (already logged and counted). */
  failed = false;
  /** performance.now() of the last bytes read from it, and written to it (liveness: TcpTransport.checkLiveness). */
  lastReadMs = 0;
  lastWriteMs = 0;
  lastError: string | null = null;
  timer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: Socket,
    public peer: NodeId | null,
    readonly dialed: boolean,
    frameBytesMax: number,
    /** An accepted connection's first frame is its hello: a tighter bound until it is accepted. */
    firstFrameBytesMax: number,
  ) {
    this.decoder = new FrameDecoder(frameBytesMax, firstFrameBytesMax);
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Everything this node keeps per peer: the address, the live connection, the send queue and the redial state. */
class PeerLink {
  conn: Connection | null = null;
  queue: Message[] = [];
  queueBytes = 0;
  /** performance.now() when a message was first queued while the peer was not connected (null: none is). */
  queuedWhileDownMs: number | null = null;
  flushScheduled = false;
  redialTimer: NodeJS.Timeout | null = null;
  redialAttempt = 0;
  /** Dials in a row that never connected: the first is logged at info, the rest at debug. */
  dialFailures = 0;
  dropped = 0;
  /** Frame bytes written to this peer since the start (metrics: peer_sent_bytes_total). */
  bytesSent = 0;
  /** Learnt from its hello, not from setPeers: dropped with its connection (setPeers naming it adopts it). */
  learned = false;
  /** When this node does not dial the peer: the next knock, and how many were sent since it was last connected. */
  knockTimer: NodeJS.Timeout | null = null;
  knocks = 0;

  constructor(
    readonly id: NodeId,
    readonly host: string,
    readonly port: number,
    /** Whether this node dials the peer (its id is the smaller). */
    readonly dials: boolean,
  ) {}

  /** Also false in the moment between a socket's end and its 'close' event, so nothing is written into a dead socket. */
  get connected(): boolean {
    return this.conn !== null && this.conn.state === 'open' && this.conn.socket.writable;
  }
}

/** Counts kept by the listener's connection limit, and by the certificate check after an accepted handshake. */
interface AcceptCounts {
  connections: number;
  overAddressMax: number;
  /** Closed right after the TLS handshake, unread: the certificate is not a manager's this node takes (verifyPeer). */
  refusedCertificates: number;
}

/** A refused certificate, or a bad frame, is logged at warn at most this often (with how many since), each one at debug. */
const REFUSED_CERTIFICATE_WARN_INTERVAL_MS = 60_000;

/**
 * A warning logged at warn once per interval at most, the rest at debug; the warning counts them (its `countField`).
 * Each `key` (at most keysMax: later ones share one) has its own interval, so a flood of one kind (a worker's
 * certificate) does not hide another (a removed manager's) for a minute.
 */
class ThrottledWarning {
  private static readonly keysMax = 32;
  private readonly byKey = new Map<string, { warnedMs: number; since: number }>();

  constructor(private readonly intervalMs: number, private readonly countField: string) {}

  log(log: Logger, fields: Record<string, unknown>, message: string, key = ''): void {
    const k = this.byKey.has(key) || this.byKey.size < ThrottledWarning.keysMax ? key : '(others)';
    let state = this.byKey.get(k);
    if (state === undefined) this.byKey.set(k, (state = { warnedMs: -Infinity, since: 0 }));
    state.since++;
    const nowMs = performance.now();
    if (nowMs - state.warnedMs < this.intervalMs) {
      log.debug(fields, message);
      return;
    }
    // The count: this one and those of its key logged at debug since its last warning.
    log.warn({ ...fields, [this.countField]: state.since }, message);
    state.warnedMs = nowMs;
    state.since = 0;
  }
}

export class TcpTransport implements Transport {
  readonly counters: TransportCounters = newTransportCounters();
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly sockets = new Set<Socket>();
  private handshakes = 0;
  private handler: ((m: Message) => void) | null = null;
  private closing = false;
  private readonly limits: TransportLimits;
  private readonly log: Logger;
  private readonly reconnectBaseMs: number;
  private readonly reconnectMaxMs: number;
  private readonly connectTimeoutMs: number;
  private readonly helloTimeoutMs: number;
  private readonly knockAfterMs: number;
  private readonly silenceMsMax: number;
  private readonly pingIntervalMs: number;
  /** The liveness check's timer, and when it last ran (a late run means this process was stalled, not its peers). */
  private livenessTimer: NodeJS.Timeout | null = null;
  private livenessRanMs = 0;
  private livenessChecksRun = 0;
  /** What the listener has seen (limitConnections counts): tests wait on these, metrics do not read them. */
  private readonly accepts: AcceptCounts = { connections: 0, overAddressMax: 0, refusedCertificates: 0 };
  /** Refused certificates and bad frames: each at warn once a minute at most (anyone who reaches the port may cause them). */
  private readonly refusedWarnings = new ThrottledWarning(REFUSED_CERTIFICATE_WARN_INTERVAL_MS, 'refusedSinceWarning');
  private readonly frameWarnings = new ThrottledWarning(REFUSED_CERTIFICATE_WARN_INTERVAL_MS, 'badFramesSinceWarning');
  /** The material new connections use; replaced by setTls when the node's certificate is renewed. */
  private tls: TransportTls | undefined;

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: Server,
  ) {
    this.limits = { ...pickLimits(defaultLimits), ...o.limits };
    this.log = o.logger;
    this.reconnectBaseMs = o.reconnectBaseMs ?? 50;
    this.reconnectMaxMs = o.reconnectMaxMs ?? 2000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 2000;
    this.helloTimeoutMs = o.helloTimeoutMs ?? 5000;
    this.knockAfterMs = o.knockAfterMs ?? 2000;
    this.silenceMsMax = o.silenceMsMax ?? defaultLimits.peerSilenceMsMax;
    this.pingIntervalMs = Math.min(o.pingIntervalMs ?? defaultLimits.peerPingIntervalMs, Math.floor(this.silenceMsMax / 3));
    this.tls = o.tls;
    for (const [id, address] of o.peers) {
      const { host, port } = parseAddress(address, `peer ${id}`);
      this.links.set(id, new PeerLink(id, host, port, o.id < id));
    }
  }

  /** Listens on `opts.listen`, then starts dialing the peers it should dial. Fails with the address on EADDRINUSE etc. */
  static async start(opts: TcpTransportOptions): Promise<TcpTransport> {
    if (opts.peers.has(opts.id)) throw new MinkubeError('CONFIG_INVALID', `node ${opts.id} lists itself as a peer`);
    const { host, port } = parseAddress(opts.listen, `node ${opts.id}`);
    const server = opts.tls === undefined ? createServer({ noDelay: true }) : createTlsServer({ ...tlsMaterial(opts.tls), requestCert: true, rejectUnauthorized: true, handshakeTimeout: opts.helloTimeoutMs ?? 5000 });
    const t = new TcpTransport(opts, server);
    limitConnections(server, defaultLimits.peerConnectionsMax, defaultLimits.peerConnectionsPerAddressMax, t.accepts);
    if (opts.tls === undefined) server.on('connection', (socket: Socket) => t.accept(socket));
    else {
      server.on('secureConnection', (socket: TLSSocket) => t.accept(socket));
      // A stranger without a certificate from our CA never gets to send a frame: counted, logged at debug.
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => t.refused(socket, `TLS: ${err.message}`));
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(listenFailed(err, opts.listen, 'raftAddress'));
      });
      server.listen({ host, port }, resolve);
    });
    server.on('error', (err) => t.log.error({ err }, 'peer listener failed'));
    for (const link of t.links.values()) t.connectLink(link);
    t.startLiveness();
    t.log.info({ listen: t.address, peers: Object.fromEntries(opts.peers) }, 'transport listening');
    return t;
  }

  /** Liveness checks run so far: each one pings the quiet connections and closes the silent ones. */
  get livenessChecks(): number {
    return this.livenessChecksRun;
  }

  /** Connections the listener has seen, those it closed at once for one address's limit, and for their certificate. */
  get acceptCounts(): Readonly<AcceptCounts> {
    return this.accepts;
  }

  /** Frame bytes written to each current peer since the start. */
  peerBytesSent(): Map<NodeId, number> {
    return new Map([...this.links.values()].map((l) => [l.id, l.bytesSent]));
  }

  /** The address actually listened on (host:port, with the real port when 0 was asked for). */
  get address(): string {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : this.o.listen;
  }

  send(messages: readonly Message[]): void {
    for (const m of messages) {
      const link = this.links.get(m.to);
      if (this.closing || link === undefined) {
        this.counters.messagesDropped++;
        continue;
      }
      const bytes = estimateMessageBytes(m);
      if (link.queue.length >= this.limits.peerSendQueueMessagesMax || link.queueBytes + bytes > this.limits.peerSendQueueBytesMax) {
        this.drop(link, 1);
        continue;
      }
      if (link.queuedWhileDownMs === null && !link.connected) link.queuedWhileDownMs = performance.now();
      link.queue.push(m);
      link.queueBytes += bytes;
      this.scheduleFlush(link);
    }
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.closing) return;
    for (const [id, link] of this.links) {
      const address = peers.get(id);
      // A learned peer stays while its connection does, unless the configuration gives it another address.
      if (address === undefined && link.learned) continue;
      if (address === undefined || address !== `${link.host}:${link.port}`) this.removeLink(link);
      else link.learned = false;
    }
    for (const [id, address] of peers) {
      if (id === this.o.id || this.links.has(id)) continue;
      const { host, port } = parseAddress(address, `peer ${id}`);
      const link = new PeerLink(id, host, port, this.o.id < id);
      this.links.set(id, link);
      this.log.info({ peer: id, address }, 'peer added');
      this.connectLink(link);
    }
  }

  private removeLink(link: PeerLink): void {
    this.links.delete(link.id);
    if (link.redialTimer !== null) clearTimeout(link.redialTimer);
    link.redialTimer = null;
    if (link.knockTimer !== null) clearTimeout(link.knockTimer);
    link.knockTimer = null;
    this.drop(link, 0);
    link.conn?.socket.destroy();
    link.conn = null;
    this.log.info({ peer: link.id }, 'peer removed');
  }

  reachable(peer: NodeId): boolean {
    return this.links.get(peer)?.connected ?? false;
  }

  /** Per-peer state for status pages and tests. */
  peerStats(): { id: NodeId; connected: boolean; queued: number; dropped: number; localAddress: string | null }[] {
    return [...this.links.values()].map((l) => ({
      id: l.id,
      connected: l.connected,
      queued: l.queue.length,
      dropped: l.dropped,
      localAddress: l.connected ? (l.conn!.socket.localAddress ?? null) : null,
    }));
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.livenessTimer !== null) clearInterval(this.livenessTimer);
    this.livenessTimer = null;
    for (const link of this.links.values()) {
      if (link.redialTimer !== null) clearTimeout(link.redialTimer);
      link.redialTimer = null;
      if (link.knockTimer !== null) clearTimeout(link.knockTimer);
      link.knockTimer = null;
      this.drop(link, 0);
    }
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    this.log.info('transport closed');
  }

  /**
   * New material (a renewed certificate) for connections made from now on, dialed and accepted. Connections already
   * open stay up: their peers were authenticated at the handshake, and dropping them would cost the cluster its leader.
   */
  setTls(tls: TransportTls): void {
    if (this.tls === undefined) throw new MinkubeError('CONFIG_INVALID', `the transport of ${this.o.id} was started without TLS; it cannot take certificates later`);
    (this.server as TlsServer).setSecureContext(tlsMaterial(tls));
    this.tls = tls;
  }

  // --- connections ---

  /** Dials the peer when this node is the dialer; otherwise waits for it, knocking if it does not come. */
  private connectLink(link: PeerLink): void {
    if (link.dials) this.dial(link);
    else this.scheduleKnock(link);
  }

  private get advertised(): string {
    return this.o.advertiseAddress ?? this.address;
  }

  /** The next knock on a peer that should dial this node, unless it is connected or one is due already. */
  private scheduleKnock(link: PeerLink): void {
    if (link.dials || link.learned || link.knockTimer !== null || this.closing) return;
    // The one backoff's ceiling (knockAfterMs, growing to 8 times while nobody answers) plus up to as much again in
    // jitter: never sooner than the ceiling, so a peer that is only slow to dial is given its time.
    const growth = { baseMs: this.knockAfterMs, capMs: 8 * this.knockAfterMs };
    const retry = link.knocks + 1;
    const delayMs = backoffCeilingMs(retry, growth) + fullJitterMs(retry, growth, () => (this.o.random ?? systemRandom).next());
    link.knockTimer = setTimeout(() => this.knock(link), delayMs);
    link.knockTimer.unref();
  }

  /** Connects to the peer, says "dial me" (a hello with knock and our address) and hangs up. */
  private knock(link: PeerLink): void {
    link.knockTimer = null;
    if (this.closing || this.links.get(link.id) !== link) return;
    if (link.connected) {
      link.knocks = 0;
      return;
    }
    link.knocks++;
    const where = { host: link.host, port: link.port, noDelay: true, ...(this.o.localAddress === undefined ? {} : { localAddress: this.o.localAddress }) };
    const tls = this.tls;
    const socket = tls === undefined ? connect(where) : tlsConnect({ ...where, ...tlsMaterial(tls), servername: undefined, checkServerIdentity: () => undefined });
    const timer = setTimeout(() => socket.destroy(), this.connectTimeoutMs);
    socket.on('error', () => {});
    socket.once('close', () => clearTimeout(timer));
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      // Our address goes only to a node whose certificate names the peer we meant.
      if (tls !== undefined && tls.verifyPeer((socket as TLSSocket).getPeerCertificate(), link.id) !== null) {
        socket.destroy();
        return;
      }
      socket.end(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: this.o.id, to: link.id, addr: this.advertised, knock: true }));
      this.log.debug({ peer: link.id, knocks: link.knocks }, 'knocked: the peer should dial this node');
    });
    this.scheduleKnock(link);
  }

  private dial(link: PeerLink): void {
    link.redialTimer = null;
    if (this.closing) return;
    const where = { host: link.host, port: link.port, noDelay: true, ...(this.o.localAddress === undefined ? {} : { localAddress: this.o.localAddress }) };
    const tls = this.tls;
    // The peer's identity is checked below (verifyPeer), not by host name: a manager's certificate names its id.
    const socket = tls === undefined ? connect(where) : tlsConnect({ ...where, ...tlsMaterial(tls), servername: undefined, checkServerIdentity: () => undefined });
    const conn = new Connection(socket, link.id, true, this.limits.frameBytesMax, this.limits.frameBytesMax);
    conn.timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
    this.track(conn);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      conn.clearTimer();
      if (tls !== undefined) {
        const problem = tls.verifyPeer((socket as TLSSocket).getPeerCertificate(), link.id);
        if (problem !== null) return this.fail(conn, `peer ${link.id} at ${link.host}:${link.port}: ${problem}`);
      }
      socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: this.o.id, to: link.id, addr: this.advertised }));
      this.opened(link, conn);
    });
  }

  private accept(socket: Socket): void {
    if (this.closing || this.handshakes >= defaultLimits.peerHandshakesPendingMax) {
      socket.destroy();
      return;
    }
    if (this.tls !== undefined) {
      // Before any of its bytes is read: a certificate of this CA that no manager here may use (a worker's, a removed
      // manager's) would otherwise get a frame of up to frameBytesMax buffered before its hello was looked at.
      const problem = this.tls.verifyPeer((socket as TLSSocket).getPeerCertificate(), null);
      if (problem !== null) return this.refusedCertificate(socket, problem);
    }
    const conn = new Connection(socket, null, false, this.limits.frameBytesMax, Math.min(this.limits.peerHelloBytesMax, this.limits.frameBytesMax));
    this.handshakes++;
    conn.timer = setTimeout(() => this.fail(conn, `no hello within ${this.helloTimeoutMs} ms`), this.helloTimeoutMs);
    this.track(conn);
  }

  /** Wires the socket's events; shared by dialed and accepted connections. */
  private track(conn: Connection): void {
    const { socket } = conn;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('drain', () => {
      const link = conn.peer === null ? undefined : this.links.get(conn.peer);
      if (link?.conn === conn) this.scheduleFlush(link);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      conn.lastError = err.code ?? err.message;
      if (conn.state === 'open') this.log.debug({ peer: conn.peer, remote: conn.remote, err: conn.lastError }, 'peer socket error');
    });
    socket.on('close', () => this.onClose(conn));
  }

  private opened(link: PeerLink, conn: Connection): void {
    const old = link.conn;
    conn.state = 'open';
    conn.openedAtMs = performance.now();
    conn.lastReadMs = conn.openedAtMs;
    conn.lastWriteMs = conn.openedAtMs;
    link.dialFailures = 0;
    link.knocks = 0;
    link.conn = conn;
    this.counters.connectionsOpened++;
    if (old !== null && old !== conn) {
      this.log.info({ peer: link.id, remote: conn.remote }, 'peer reconnected; closing its older connection');
      old.socket.destroy();
    }
    this.log.info({ peer: link.id, remote: conn.remote, dialed: conn.dialed }, 'peer connected');
    this.scheduleFlush(link);
  }

  private onClose(conn: Connection): void {
    const wasHandshake = conn.state === 'handshake';
    const wasOpen = conn.state === 'open';
    conn.clearTimer();
    conn.state = 'closed';
    this.sockets.delete(conn.socket);
    if (wasHandshake && !conn.dialed) this.handshakes--;
    if (conn.decoder.bufferedBytes > 0 && !conn.failed && !this.closing) {
      this.frameError(conn, `the connection closed in the middle of a frame (${conn.decoder.bufferedBytes} bytes buffered)`);
    }
    const link = conn.peer === null ? undefined : this.links.get(conn.peer);
    if (link === undefined) return;
    if (conn.dialed && !wasOpen && !this.closing) this.dialFailed(link, conn);
    if (link.conn === conn) {
      link.conn = null;
      if (wasOpen && !this.closing) this.log.info({ peer: link.id }, 'peer disconnected');
    }
    if (link.learned && link.conn === null && !this.closing) {
      // It knocks or dials again if it still needs this node; until then this node knows no address for it.
      this.removeLink(link);
      return;
    }
    if (!link.dials) {
      if (link.conn === null) this.scheduleKnock(link);
      return;
    }
    if (this.closing || link.conn !== null) return;
    // A connection that carried frames or lived a while was healthy: start the backoff over.
    if (wasOpen && (conn.framesReceived > 0 || performance.now() - conn.openedAtMs >= this.reconnectMaxMs)) link.redialAttempt = 0;
    this.scheduleRedial(link);
  }

  private dialFailed(link: PeerLink, conn: Connection): void {
    link.dialFailures++;
    const fields = { peer: link.id, address: `${link.host}:${link.port}`, failures: link.dialFailures, ...(conn.lastError === null ? {} : { err: conn.lastError }) };
    // A certificate not valid at one side's clock is no passing failure: say what to look at, now and then.
    const clockSkew = conn.lastError !== null && /CERT_NOT_YET_VALID|CERT_HAS_EXPIRED/.test(String(conn.lastError));
    // Nor is a process out of descriptors: no connection leaves it, whichever peer it dials.
    const outOfFds = conn.lastError === 'EMFILE' || conn.lastError === 'ENFILE';
    if (clockSkew && link.dialFailures % 30 === 1) this.log.warn(fields, "cannot reach peer: a certificate is not valid at this host's clock or the peer's (not yet valid, or expired): check both hosts' clocks; retrying with backoff");
    else if (outOfFds && link.dialFailures % 30 === 1) this.log.warn(fields, `cannot reach peer: this process is out of file descriptors (${String(conn.lastError)}): raise its limit (ulimit -n, systemd's LimitNOFILE; README, "File descriptors"); retrying with backoff`);
    else if (link.dialFailures === 1) this.log.info(fields, 'cannot reach peer; retrying with backoff');
    else this.log.debug(fields, 'cannot reach peer');
  }

  /** Full jitter: a uniform delay in [0, min(max, base * 2^attempt)). */
  private scheduleRedial(link: PeerLink): void {
    if (link.redialTimer !== null) return;
    const delayMs = fullJitterMs(link.redialAttempt + 1, { baseMs: this.reconnectBaseMs, capMs: this.reconnectMaxMs }, () => (this.o.random ?? systemRandom).next());
    link.redialAttempt = Math.min(link.redialAttempt + 1, 30);
    link.redialTimer = setTimeout(() => this.dial(link), delayMs);
    link.redialTimer.unref();
  }

  // --- reading ---

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.state === 'closed') return;
    conn.lastReadMs = performance.now();
    this.counters.bytesReceived += chunk.length;
    let payloads: Buffer[];
    try {
      payloads = conn.decoder.push(chunk);
    } catch (err) {
      this.fail(conn, (err as Error).message);
      return;
    }
    for (const payload of payloads) {
      const frame = decodePayload(payload);
      if (typeof frame === 'string') return this.fail(conn, frame);
      conn.framesReceived++;
      this.counters.framesReceived++;
      const problem = conn.state === 'handshake' ? this.onHello(conn, frame) : this.onRaftFrame(conn, frame);
      if (problem !== null) return this.fail(conn, problem);
      if (this.closing || conn.socket.destroyed) return;
    }
  }

  /** Accepts the connection as the peer's, or says why not. */
  private onHello(conn: Connection, frame: Frame): string | null {
    if (conn.dialed) return 'a frame arrived before our hello was sent';
    if (frame.kind !== 'hello') return `expected a hello first, got a ${frame.kind} frame`;
    if (frame.to !== this.o.id) return `hello addressed to ${frame.to}, but this is ${this.o.id}`;
    if (frame.from === this.o.id) return `hello from ${frame.from}, which is this node`;
    if (this.tls !== undefined) {
      const problem = this.tls.verifyPeer((conn.socket as TLSSocket).getPeerCertificate(), frame.from);
      if (problem !== null) return `hello from ${frame.from}: ${problem}`;
    }
    if (frame.knock === true) return this.onKnock(conn, frame);
    let link = this.links.get(frame.from);
    if (link === undefined) {
      const learned = this.learn(conn, frame, false);
      if (typeof learned === 'string') return learned;
      link = learned;
    }
    if (link.dials) return `hello from ${frame.from}, but this node dials it (the smaller id dials)`;
    conn.clearTimer();
    conn.peer = frame.from;
    this.handshakes--;
    this.opened(link, conn);
    return null;
  }

  /**
   * A peer that waits for this node to dial it. One this node knows is dialed now (not at the end of its backoff);
   * one it does not know is learnt from the knock's address and dialed. The knocking connection closes either way.
   */
  private onKnock(conn: Connection, frame: Extract<Frame, { kind: 'hello' }>): string | null {
    conn.clearTimer();
    let link = this.links.get(frame.from);
    // Learnt before the socket is destroyed: a destroyed socket no longer says where it came from.
    const learned = link === undefined ? this.learn(conn, frame, true) : link;
    conn.socket.destroy();
    if (typeof learned === 'string') {
      this.log.warn({ peer: frame.from, remote: conn.remote, reason: learned }, 'ignored a knock');
      return null;
    }
    link = learned;
    if (!link.dials || link.connected || (link.conn !== null && link.conn.state === 'handshake')) return null;
    if (link.redialTimer !== null) clearTimeout(link.redialTimer);
    link.redialTimer = null;
    link.redialAttempt = 0;
    this.dial(link);
    return null;
  }

  /**
   * A link for a node outside this node's peers, from its hello (its identity already checked, when there is TLS):
   * at its `addr` when it gave one, else where it connected from (only for telling addresses apart: this node
   * never dials such a link). Under `insecure`, nothing vouches for an address, so a knock's `addr` must be on the
   * host the knock came from: a stranger cannot point this node's dials at a third host.
   */
  private learn(conn: Connection, frame: Extract<Frame, { kind: 'hello' }>, knock: boolean): PeerLink | string {
    if (this.closing) return 'closing';
    const learnt = [...this.links.values()].filter((l) => l.learned).length;
    if (learnt >= defaultLimits.peerLearnedMax) return `hello from unknown node ${frame.from}: already ${learnt} peers outside the configuration`;
    const dials = this.o.id < frame.from;
    if (dials !== knock) return `hello from ${frame.from}: ${dials ? 'this node dials it' : 'it dials this node'} (the smaller id dials)`;
    let host = conn.socket.remoteAddress ?? '';
    let port = 0;
    if (frame.addr !== undefined) {
      try {
        ({ host, port } = parseAddress(frame.addr, `peer ${frame.from}`));
      } catch {
        return `hello from ${frame.from}: bad address ${JSON.stringify(frame.addr)}`;
      }
    } else if (knock) return `knock from ${frame.from} without an address`;
    if (knock && this.tls === undefined && !sameHost(host, conn.socket.remoteAddress)) {
      return `knock from ${frame.from}: its address ${frame.addr} is not on the host it came from (${conn.socket.remoteAddress ?? '?'})`;
    }
    const link = new PeerLink(frame.from, host, port, dials);
    link.learned = true;
    this.links.set(frame.from, link);
    this.log.info({ peer: frame.from, address: frame.addr ?? null, knock }, 'peer learnt from its hello (not in this node\'s configuration)');
    return link;
  }

  private onRaftFrame(conn: Connection, frame: Frame): string | null {
    if (frame.kind !== 'raft') return `unexpected ${frame.kind} frame on an open connection`;
    for (const m of frame.messages) {
      if (m.from !== conn.peer || m.to !== this.o.id) return `a ${m.type} message from ${m.from} to ${m.to} on the connection with ${conn.peer}`;
    }
    this.counters.messagesReceived += frame.messages.length;
    const handler = this.handler;
    if (handler === null || this.closing) return null;
    for (const m of frame.messages) handler(m);
    return null;
  }

  /** A connection refused before it became one of ours (a failed TLS handshake). */
  refused(socket: Socket, reason: string): void {
    this.counters.frameErrors++;
    this.log.debug({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason }, 'refused a peer connection');
    socket.destroy();
  }

  /** An accepted connection closed unread for its certificate: counted, at debug, and at warn once a minute at most. */
  private refusedCertificate(socket: Socket, reason: string): void {
    this.accepts.refusedCertificates++;
    socket.destroy();
    // Keyed by the reason: it names the certificate's holder, which a caller cannot vary without another certificate.
    this.refusedWarnings.log(this.log, { remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason }, 'refused a peer connection: its certificate is not a manager\'s this node takes', reason);
  }

  private fail(conn: Connection, reason: string): void {
    if (conn.state === 'closed') return;
    conn.failed = true;
    this.frameError(conn, reason);
    conn.socket.destroy();
  }

  private frameError(conn: Connection, reason: string): void {
    this.counters.frameErrors++;
    this.frameWarnings.log(this.log, { peer: conn.peer, remote: conn.remote, reason }, 'closing a peer connection after a bad frame');
  }

  // --- liveness ---

  /**
   * Every pingIntervalMs: a connection that brought nothing for silenceMsMax is closed (and dialed again, or waited
   * for, as any lost connection), and one that carried nothing out for pingIntervalMs gets an empty frame. A packet-
   * dropping partition leaves both ends of a connection open; without this, a healed node would wait for TCP's
   * backed-off retransmission (11-49 s measured) before its peers heard it again. Followers send each other nothing
   * else, and a leader's heartbeats make its own pings unnecessary.
   */
  private startLiveness(): void {
    this.livenessRanMs = performance.now();
    this.livenessTimer = setInterval(() => this.checkLiveness(), this.pingIntervalMs);
    this.livenessTimer.unref();
  }

  private checkLiveness(): void {
    const nowMs = performance.now();
    this.livenessChecksRun++;
    // Run this late, this process was stalled (a pause, a long collection): what its peers sent may be waiting
    // unread in the socket, so silence is counted only from now.
    const stalled = nowMs - this.livenessRanMs > this.pingIntervalMs + this.silenceMsMax / 2;
    this.livenessRanMs = nowMs;
    for (const link of this.links.values()) {
      const conn = link.conn;
      if (conn === null || conn.state !== 'open') continue;
      if (stalled) conn.lastReadMs = nowMs;
      const silentMs = nowMs - conn.lastReadMs;
      if (silentMs >= this.silenceMsMax) {
        this.log.info({ peer: link.id, remote: conn.remote, silentMs: Math.round(silentMs) }, 'peer silent; closing the connection to connect again');
        conn.socket.destroy();
        continue;
      }
      if (nowMs - conn.lastWriteMs >= this.pingIntervalMs && link.connected && !conn.socket.writableNeedDrain) {
        conn.lastWriteMs = nowMs;
        conn.socket.write(pingFrame);
        this.counters.framesSent++;
        this.counters.bytesSent += pingFrame.length;
        link.bytesSent += pingFrame.length;
      }
    }
  }

  // --- writing ---

  private scheduleFlush(link: PeerLink): void {
    if (link.flushScheduled || link.queue.length === 0 || !link.connected) return;
    link.flushScheduled = true;
    // A microtask: everything one Ready sends is queued in one synchronous run, so it still goes out as one write,
    // and a message does not wait for the next turn of the event loop.
    queueMicrotask(() => {
      link.flushScheduled = false;
      this.flush(link);
    });
  }

  /** Writes everything queued for the peer, as few frames as fit under the frame limit, unless the socket is backed up. */
  private flush(link: PeerLink): void {
    const conn = link.conn;
    if (conn === null || !link.connected || link.queue.length === 0 || conn.socket.writableNeedDrain) return;
    const downSinceMs = link.queuedWhileDownMs;
    link.queuedWhileDownMs = null;
    if (downSinceMs !== null && performance.now() - downSinceMs > this.limits.peerQueueStaleMs) {
      // Queued while the peer was unreachable, longer ago than an election: a leader's heartbeats from a term it may
      // have stepped down in since would make the peer follow a leader that is gone. Raft sends again what is needed.
      this.log.debug({ peer: link.id, messages: link.queue.length }, 'dropping messages queued while the peer was unreachable');
      this.drop(link, 0);
      return;
    }
    const batch = link.queue;
    link.queue = [];
    link.queueBytes = 0;
    const socket = conn.socket;
    conn.lastWriteMs = performance.now();
    socket.cork();
    for (let start = 0; start < batch.length; ) {
      const end = this.frameEnd(batch, start);
      this.writeFrame(link, socket, batch.slice(start, end));
      start = end;
    }
    socket.uncork();
  }

  /** The end of the run of messages from `start` whose estimated size fits in half a frame (at least one message). */
  private frameEnd(batch: readonly Message[], start: number): number {
    let bytes = 0;
    let end = start;
    while (end < batch.length && (end === start || bytes + estimateMessageBytes(batch[end]!) <= this.limits.frameBytesMax / 2)) {
      bytes += estimateMessageBytes(batch[end]!);
      end++;
    }
    return end;
  }

  /** Encodes and writes one frame; halves it if the estimate was wrong, drops a single message that cannot fit. */
  private writeFrame(link: PeerLink, socket: Socket, messages: readonly Message[]): void {
    const pending: (readonly Message[])[] = [messages];
    while (pending.length > 0) {
      const part = pending.pop()!;
      const frame = encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: part });
      if (payloadBytes(frame) <= this.limits.frameBytesMax) {
        socket.write(frame);
        this.counters.framesSent++;
        this.counters.bytesSent += frame.length;
        link.bytesSent += frame.length;
        this.counters.messagesSent += part.length;
      } else if (part.length === 1) {
        this.log.warn({ peer: link.id, type: part[0]!.type, bytes: frame.length }, 'dropping a message larger than a frame');
        this.drop(link, 1);
      } else {
        const mid = part.length >> 1;
        pending.push(part.slice(mid), part.slice(0, mid));
      }
    }
  }

  /** Counts n dropped messages for the link; n = 0 drops its whole queue. */
  private drop(link: PeerLink, n: number): void {
    const count = n === 0 ? link.queue.length : n;
    if (n === 0) {
      link.queue = [];
      link.queueBytes = 0;
    }
    link.dropped += count;
    this.counters.messagesDropped += count;
  }
}

/**
 * Bounds the connections a listener holds: `max` in all (node refuses more at accept), `perAddressMax` from one remote
 * address (closed at once, before a TLS handshake is spent on them). A flood of idle connections otherwise held a
 * manager's memory (12,000 of them: 92 -> 345 MiB) and one address could take every slot.
 */
function limitConnections(server: Server, max: number, perAddressMax: number, counts: AcceptCounts): void {
  server.maxConnections = max;
  const perAddress = new Map<string, number>();
  // prependListener: before the TLS server's own listener starts a handshake on the socket.
  server.prependListener('connection', (socket: Socket) => {
    counts.connections++;
    const address = socket.remoteAddress ?? '?';
    const n = (perAddress.get(address) ?? 0) + 1;
    if (n > perAddressMax) {
      counts.overAddressMax++;
      socket.destroy();
      return;
    }
    perAddress.set(address, n);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });
}

/** Whether two host strings name one host (an IPv4 address may come back IPv6-mapped). */
function sameHost(a: string, b: string | undefined): boolean {
  const plain = (h: string): string => h.replace(/^::ffff:/, '').toLowerCase();
  return b !== undefined && plain(a) === plain(b);
}

function tlsMaterial(tls: TransportTls): { ca: string; cert: string; key: string; minVersion: 'TLSv1.3' } {
  return { ca: tls.caCertPem, cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' };
}

function pickLimits(l: TransportLimits): TransportLimits {
  return { frameBytesMax: l.frameBytesMax, peerHelloBytesMax: l.peerHelloBytesMax, peerSendQueueMessagesMax: l.peerSendQueueMessagesMax, peerSendQueueBytesMax: l.peerSendQueueBytesMax, peerQueueStaleMs: l.peerQueueStaleMs };
}

/** host:port (or [v6]:port) to its parts; a bad address is a config error naming whose it is. */
export function parseAddress(address: string, whose: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, Math.max(i, 0)).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || host === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MinkubeError('CONFIG_INVALID', `bad address "${address}" for ${whose} (expected host:port)`);
  }
  return { host, port };
}
