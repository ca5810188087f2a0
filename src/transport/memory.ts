// The in-memory twin of TcpTransport for manager tests: one MemoryNetwork delivers messages asynchronously (in order
// per pair, like one TCP connection) and can isolate nodes or cut links one way, until healed.
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { Message } from '../raft/types.js';
import { validateMessage } from './codec.js';
import { newTransportCounters, type Transport, type TransportCounters } from './types.js';

export interface MemoryNetworkOptions {
  /** Run every delivered message through validateMessage, as the TCP transport does (default true). */
  readonly validate?: boolean;
  /** Messages in flight per directed pair before new ones are dropped. */
  readonly linkMessagesMax?: number;
}

interface InFlight {
  readonly from: MemoryTransport;
  readonly message: Message;
}

const linkKey = (from: NodeId, to: NodeId): string => `${from}\u0000${to}`;

export class MemoryNetwork {
  private readonly nodes = new Map<NodeId, MemoryTransport>();
  private readonly isolated = new Set<NodeId>();
  private readonly cuts = new Set<string>();
  private readonly inFlightPerLink = new Map<string, number>();
  private queue: InFlight[] = [];
  private drainScheduled = false;
  private readonly validate: boolean;
  private readonly linkMessagesMax: number;

  constructor(opts: MemoryNetworkOptions = {}) {
    this.validate = opts.validate ?? true;
    this.linkMessagesMax = opts.linkMessagesMax ?? limits.peerSendQueueMessagesMax;
  }

  /** The transport of node `id`; a closed one is replaced, as when a node restarts. */
  transport(id: NodeId): MemoryTransport {
    const existing = this.nodes.get(id);
    if (existing !== undefined && !existing.closed) throw new Error(`node ${id} already has an open transport`);
    const t = new MemoryTransport(id, this);
    this.nodes.set(id, t);
    return t;
  }

  /** Drops everything to and from the node. */
  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  /** Drops messages from `from` to `to` (one way). */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(linkKey(from, to));
  }

  heal(): void {
    this.isolated.clear();
    this.cuts.clear();
  }

  /** Whether a message from `from` would reach `to` now. */
  deliverable(from: NodeId, to: NodeId): boolean {
    const target = this.nodes.get(to);
    return target !== undefined && !target.closed && !this.isolated.has(from) && !this.isolated.has(to) && !this.cuts.has(linkKey(from, to));
  }

  /** @internal Called by MemoryTransport.send. */
  enqueue(from: MemoryTransport, messages: readonly Message[]): void {
    for (const message of messages) {
      const key = linkKey(from.id, message.to);
      const inFlight = this.inFlightPerLink.get(key) ?? 0;
      if (!this.nodes.has(message.to) || inFlight >= this.linkMessagesMax) {
        from.counters.messagesDropped++;
        continue;
      }
      this.inFlightPerLink.set(key, inFlight + 1);
      this.queue.push({ from, message });
      from.counters.messagesSent++;
    }
    if (!this.drainScheduled && this.queue.length > 0) {
      this.drainScheduled = true;
      setImmediate(() => this.drain());
    }
  }

  /** Delivers what was queued before this turn; partitions and closes are checked at delivery, as on a real wire. */
  private drain(): void {
    this.drainScheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const { from, message } of batch) {
      const key = linkKey(from.id, message.to);
      this.inFlightPerLink.set(key, (this.inFlightPerLink.get(key) ?? 1) - 1);
      const target = this.nodes.get(message.to);
      if (target === undefined || from.closed || !this.deliverable(from.id, message.to)) {
        from.counters.messagesDropped++;
        continue;
      }
      const checked = this.validate ? validateMessage(message) : message;
      if (typeof checked === 'string') {
        target.counters.frameErrors++;
        continue;
      }
      target.deliver(checked);
    }
  }
}

export class MemoryTransport implements Transport {
  readonly counters: TransportCounters = newTransportCounters();
  closed = false;
  private handler: ((m: Message) => void) | null = null;
  /** null: every node on the network (until setPeers is called). */
  private peers: ReadonlySet<NodeId> | null = null;

  constructor(
    readonly id: NodeId,
    private readonly network: MemoryNetwork,
  ) {}

  send(messages: readonly Message[]): void {
    if (this.closed) {
      this.counters.messagesDropped += messages.length;
      return;
    }
    const peers = this.peers;
    if (peers === null) return this.network.enqueue(this, messages);
    const allowed = messages.filter((m) => peers.has(m.to));
    this.counters.messagesDropped += messages.length - allowed.length;
    this.network.enqueue(this, allowed);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.peers = new Set(peers.keys());
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  reachable(peer: NodeId): boolean {
    if (this.peers !== null && !this.peers.has(peer)) return false;
    return !this.closed && this.network.deliverable(this.id, peer) && this.network.deliverable(peer, this.id);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** @internal Called by MemoryNetwork. */
  deliver(message: Message): void {
    if (this.closed) return;
    this.counters.messagesReceived++;
    this.handler?.(message);
  }
}
