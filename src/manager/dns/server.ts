// A manager's DNS server: UDP and TCP on one host:port, each query answered by answer() from the view. Bounded:
// queries over dnsQueryBytesMax are dropped, UDP answers truncated (TC) to the client's size, at most
// dnsTcpConnectionsMax TCP connections, each bounded by TcpDnsConnection (idle, unsent answers, queries per turn).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../lib/clock.js';
import { limits } from '../../lib/limits.js';
import { answer, encodeResponse, formatError, udpSizeLimit } from './answer.js';
import { TcpDnsConnection, type TcpDnsBounds, type TcpDnsCloseReason } from './tcp-connection.js';
import type { DnsView } from './view.js';

export interface DnsServerOptions {
  host: string;
  port: number;
  view: DnsView;
  logger: Logger;
  clock?: Clock;
  tcpConnectionsMax?: number;
  tcpIdleMs?: number;
  tcpDrainMs?: number;
  tcpUnsentBytesMax?: number;
  tcpQueriesPerTurnMax?: number;
}

/** What the TCP side has done since the server started, for tests and diagnostics. */
export interface DnsTcpStats {
  open: number;
  /** Times a connection stopped being read because its answers waited unsent. */
  pauses: number;
  /** Connections the server closed, by why. */
  closed: Record<TcpDnsCloseReason, number>;
  /** The most bytes of answers one connection ever had waiting unsent. */
  unsentBytesPeak: number;
}

export class DnsServer {
  private readonly connections = new Set<Socket>();
  private refusedConnections = 0;
  private readonly stats: DnsTcpStats = { open: 0, pauses: 0, closed: { idle: 0, undrained: 0, unsent: 0, oversized: 0 }, unsentBytesPeak: 0 };

  private constructor(
    private readonly o: DnsServerOptions,
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {}

  /** Binds UDP and TCP on host:port (port 0: one free port for both is not guaranteed; tests pass a real one). */
  static async start(o: DnsServerOptions): Promise<DnsServer> {
    const host = o.host.replace(/^\[(.*)\]$/, '$1');
    const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    // The write high-water mark is where a connection stops being read (TcpDnsConnection), whatever Node's default.
    const tcp = createServer({ pauseOnConnect: false, highWaterMark: limits.dnsTcpPauseBytes });
    const server = new DnsServer({ ...o, host }, udp, tcp);
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(o.port, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(o.port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await server.close();
      throw err;
    }
    udp.on('message', (msg, rinfo) => server.onDatagram(msg, rinfo.address, rinfo.port));
    udp.on('error', (err) => o.logger.warn({ err }, 'dns udp socket error'));
    tcp.on('connection', (socket) => server.onConnection(socket));
    tcp.on('error', (err) => o.logger.warn({ err }, 'dns tcp server error'));
    return server;
  }

  tcpStats(): DnsTcpStats {
    return { ...this.stats, open: this.connections.size, closed: { ...this.stats.closed } };
  }

  get udpPort(): number {
    return this.udp.address().port;
  }

  async close(): Promise<void> {
    for (const s of this.connections) s.destroy();
    await Promise.all([
      new Promise<void>((resolve) => {
        try {
          this.udp.close(() => resolve());
        } catch {
          resolve(); // not bound, or closed already
        }
      }),
      new Promise<void>((resolve) => (this.tcp.listening ? this.tcp.close(() => resolve()) : resolve())),
    ]);
  }

  /** The answer's bytes for one query's bytes, or null to drop it (garbage, or a response sent to us). */
  private respond(bytes: Buffer, udp: boolean): Buffer | null {
    if (bytes.length > limits.dnsQueryBytesMax) return null;
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(bytes);
    } catch {
      return bytes.length >= 12 && (bytes[2]! & 0x80) === 0 ? formatError(bytes) : null;
    }
    if (query.type !== 'query') return null;
    const response = answer(query, this.o.view);
    return encodeResponse(response, udp ? udpSizeLimit(query) : 65_535);
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    let out: Buffer | null;
    try {
      out = this.respond(msg, true);
    } catch (err) {
      this.o.logger.warn({ err }, 'dns query failed');
      return;
    }
    if (out !== null) this.udp.send(out, port, address);
  }

  private onConnection(socket: Socket): void {
    if (this.connections.size >= (this.o.tcpConnectionsMax ?? limits.dnsTcpConnectionsMax)) {
      if (this.refusedConnections++ % 100 === 0) this.o.logger.warn({ open: this.connections.size }, 'dns: too many tcp connections; closing new ones');
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    new TcpDnsConnection(socket, this.o.clock ?? systemClock, this.tcpBounds(), {
      respond: (query) => this.respondFramed(query),
      closed: (reason) => this.stats.closed[reason]++,
      paused: () => this.stats.pauses++,
      wrote: (unsentBytes) => (this.stats.unsentBytesPeak = Math.max(this.stats.unsentBytesPeak, unsentBytes)),
    });
  }

  private tcpBounds(): TcpDnsBounds {
    return {
      idleMs: this.o.tcpIdleMs ?? limits.dnsTcpIdleMs,
      drainMs: this.o.tcpDrainMs ?? limits.dnsTcpDrainMs,
      unsentBytesMax: this.o.tcpUnsentBytesMax ?? limits.dnsTcpUnsentBytesMax,
      queriesPerTurnMax: this.o.tcpQueriesPerTurnMax ?? limits.dnsTcpQueriesPerTurnMax,
    };
  }

  /** One query's answer with its 2-byte length (RFC 1035 4.2.2), or null to send nothing. */
  private respondFramed(query: Buffer): Buffer | null {
    let out: Buffer | null = null;
    try {
      out = this.respond(query, false);
    } catch (err) {
      this.o.logger.warn({ err }, 'dns query failed');
    }
    if (out === null) return null;
    const framed = Buffer.alloc(2 + out.length);
    framed.writeUInt16BE(out.length, 0);
    out.copy(framed, 2);
    return framed;
  }
}
