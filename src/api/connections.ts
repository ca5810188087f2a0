// The connection cap of a Minkube HTTP port (managers' and workers' APIs): at most connectionsMax open connections,
// at most connectionsPerAddressMax of them from one client address, and a new connection past either takes the place
// of the connection idle longest instead of being refused.
//
// Why evict rather than refuse, as node's maxConnections does: refusing leaves the slots to whoever holds them, and an
// idle connection costs its holder nothing. 1024 connections that sent nothing (or sit idle after a keep-alive answer,
// or in a TLS handshake) locked every other client out, and the timeouts only made the attacker open them again.
// Losing an idle connection costs its client little (HTTP clients open another, and retry a request they had not
// sent), so the newest client is served and a flood of idle connections only churns its own. A connection with a
// request under way (its headers read and its answer not finished; an HTTP/2 stream open, a followed log) is never
// evicted: the receive timeout bounds the request, and a long answer is someone reading. Nor is one idle under
// evictableIdleMsMin: a client between two requests on its keep-alive connection, or in the middle of its handshake,
// is not cut off by a burst of new connections.
//
// Why a cap per address besides: the connections one client keeps busy (bodies trickled to the routes anyone may
// call, login and join, each up to the receive timeout) cannot take every slot. An IPv6 client is counted by its /64,
// which one host usually holds whole. Past its cap, a client's new connection takes the place of its own connection
// idle longest, or is refused.
//
// Why a cap by file descriptors besides (src/lib/fds.ts): connections that took every descriptor left the process
// unable to open anything else (its storage's files, its peers' connections), and, at the limit, libuv stopped taking
// connections from the kernel's queue, whose clients then waited until they gave up. A connection whose descriptor is
// within the reserved few of the limit counts as one past connectionsMax.
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { socketFd } from '../lib/fds.js';

export interface SlotBounds {
  connectionsMax: number;
  connectionsPerAddressMax: number;
  /** A connection idle for less than this keeps its slot. */
  evictableIdleMsMin: number;
}

/** What the slots ask of the process's descriptors (FdWatch). */
export interface FdCheck {
  /** Whether a new connection on descriptor fd is one too many for the process. */
  crowded(fd: number | undefined): boolean;
  refusedOne(): void;
  evictedOne(): void;
}

interface Slot {
  readonly socket: Socket;
  readonly address: string;
  /** Requests (HTTP/1.1) or streams (HTTP/2) under way. */
  busy: number;
  /** performance.now(): an idle time, which a wall-clock step must not stretch or make up. */
  idleSinceMs: number;
  gone: boolean;
}

/** The slot of a connection, on its TCP socket (found from its TLS socket, and through an HTTP/2 session's proxy). */
const slotKey = Symbol('minkube connection slot');

type Tagged = { [slotKey]?: Slot; _parent?: Tagged };

function slotOf(socket: unknown): Slot | undefined {
  const tagged = socket as Tagged | undefined;
  // A TLS socket's TCP socket is its _parent: node has no public name for it.
  return tagged?.[slotKey] ?? tagged?._parent?.[slotKey];
}

type Watched = {
  prependListener(event: 'request', listener: (req: { httpVersionMajor: number; socket: unknown }, res: EventEmitter) => void): unknown;
  on(event: 'session', listener: (session: EventEmitter & { socket: unknown }) => void): unknown;
};

export class ConnectionSlots {
  private open = 0;
  private readonly openByAddress = new Map<string, number>();
  /** Idle connections in the order they became idle: the one idle longest first. */
  private readonly idle = new Set<Slot>();
  private readonly idleByAddress = new Map<string, Set<Slot>>();

  constructor(
    private readonly bounds: SlotBounds,
    private readonly fds: FdCheck | null = null,
  ) {}

  /**
   * Gives a new connection its slot, taking one from the connection idle longest when there is none (its own
   * address's, past that address's cap; any, when its descriptor is in the process's reserve); when every connection
   * is busy or only just idle, closes the new one and answers false.
   */
  admit(socket: Socket): boolean {
    const address = addressKey(socket.remoteAddress);
    // Past the address's cap its own idle connection gives its place (and its descriptor); past the server's cap, or
    // with the descriptor in the process's reserve, the one idle longest.
    const ownFull = (this.openByAddress.get(address) ?? 0) >= this.bounds.connectionsPerAddressMax;
    const crowded = !ownFull && this.fds !== null && this.fds.crowded(socketFd(socket));
    const room = ownFull ? this.evictFrom(this.idleByAddress.get(address)) : (this.open < this.bounds.connectionsMax && !crowded) || this.evictFrom(this.idle);
    if (crowded) {
      if (room) this.fds?.evictedOne();
      else this.fds?.refusedOne();
    }
    if (!room) {
      socket.destroy();
      return false;
    }
    const slot: Slot = { socket, address, busy: 0, idleSinceMs: performance.now(), gone: false };
    (socket as Tagged)[slotKey] = slot;
    this.open++;
    this.openByAddress.set(address, (this.openByAddress.get(address) ?? 0) + 1);
    this.markIdle(slot);
    socket.once('close', () => this.release(slot));
    return true;
  }

  /**
   * Closes every connection idle at least evictableIdleMsMin (the process is out of descriptors: they are given back);
   * how many.
   */
  shed(): number {
    let closed = 0;
    while (this.evictFrom(this.idle)) closed++;
    return closed;
  }

  /** Counts `server`'s HTTP/1.1 requests (until their answer closes) and HTTP/2 streams as their connection's work. */
  watch(server: Watched): void {
    server.prependListener('request', (req, res) => {
      if (req.httpVersionMajor === 1) this.holdUntilClose(slotOf(req.socket), res);
    });
    server.on('session', (session) => {
      const slot = slotOf(session.socket);
      if (slot !== undefined) session.on('stream', (stream: EventEmitter) => this.holdUntilClose(slot, stream));
    });
  }

  private holdUntilClose(slot: Slot | undefined, work: EventEmitter): void {
    if (slot === undefined || slot.gone) return;
    if (slot.busy++ === 0) this.unmarkIdle(slot);
    work.once('close', () => {
      if (--slot.busy === 0 && !slot.gone) {
        slot.idleSinceMs = performance.now();
        this.markIdle(slot);
      }
    });
  }

  /** Closes the first of `idle` (the one idle longest) if it has been idle long enough; whether it did. */
  private evictFrom(idle: Set<Slot> | undefined): boolean {
    const first = idle?.values().next().value;
    if (first === undefined || performance.now() - first.idleSinceMs < this.bounds.evictableIdleMsMin) return false;
    this.release(first);
    first.socket.destroy();
    return true;
  }

  private release(slot: Slot): void {
    if (slot.gone) return;
    slot.gone = true;
    this.unmarkIdle(slot);
    this.open--;
    const left = (this.openByAddress.get(slot.address) ?? 1) - 1;
    if (left > 0) this.openByAddress.set(slot.address, left);
    else this.openByAddress.delete(slot.address);
  }

  private markIdle(slot: Slot): void {
    this.idle.add(slot);
    let own = this.idleByAddress.get(slot.address);
    if (own === undefined) {
      own = new Set();
      this.idleByAddress.set(slot.address, own);
    }
    own.add(slot);
  }

  private unmarkIdle(slot: Slot): void {
    this.idle.delete(slot);
    const own = this.idleByAddress.get(slot.address);
    own?.delete(slot);
    if (own?.size === 0) this.idleByAddress.delete(slot.address);
  }
}

/**
 * What a client is counted as: its IPv4 address (an IPv4-mapped IPv6 one too), or its IPv6 address's /64, written
 * `a:b:c:d::/64`.
 */
export function addressKey(remote: string | undefined): string {
  if (remote === undefined) return '';
  const address = remote.split('%')[0]!.toLowerCase();
  if (!address.includes(':')) return address;
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice('::ffff:'.length);
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // A dotted IPv4 tail holds two groups.
  const rightGroups = right.length + (right.at(-1)?.includes('.') === true ? 1 : 0);
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - rightGroups)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`;
}
