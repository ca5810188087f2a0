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
  close(): Promise<void>;
}
