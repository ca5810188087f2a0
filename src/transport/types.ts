// Peer messaging between managers. The memory implementation drives tests; the TCP one drives real clusters.
import type { NodeId } from '../lib/ids.js';
import type { Message } from '../raft/types.js';

export interface Transport {
  /** Queues messages for their peers and returns at once. A full per-peer queue drops messages (Raft retries). */
  send(messages: readonly Message[]): void;
  /** One handler; every message it receives has been validated. */
  onMessage(handler: (message: Message) => void): void;
  /** Whether this node currently has a working connection to the peer (as seen by this node). */
  reachable(peer: NodeId): boolean;
  /**
   * The peers from now on (membership changes): new ones are connected, removed ones dropped with their queues, a
   * changed address reconnects. Messages to a node that is not a peer are dropped.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  close(): Promise<void>;
}

/** Monotonic counters for metrics. */
export interface TransportCounters {
  messagesSent: number;
  messagesReceived: number;
  /** Messages dropped: unknown peer, full queue, too large, or closed transport. */
  messagesDropped: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Connections closed for a malformed, oversized, invalid or misplaced frame (or a handshake failure). */
  frameErrors: number;
  connectionsOpened: number;
}

export function newTransportCounters(): TransportCounters {
  return {
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    frameErrors: 0,
    connectionsOpened: 0,
  };
}
