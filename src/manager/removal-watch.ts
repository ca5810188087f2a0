// A manager removed from the cluster while it was down or cut off never receives the entry that removes it: a
// leader sends nothing to a node outside its configuration, and ignores that node's vote requests, so the removed
// manager would wait for a leader for ever, answering NO_LEADER after every request's timeout. etcd's peers tell
// such a member it was removed; here the manager finds out by itself: once it has known no leader for a while, it
// asks the other members' APIs, and a leader whose term is at least its own and whose configuration leaves it out
// settles it. From then on it refuses what it is asked at once (NOT_READY, "removed"), until a leader speaks to it
// again (it was added back).
import type { HttpClient } from '../client/http.js';
import type { Clock } from '../lib/clock.js';
import type { NodeId } from '../lib/ids.js';

/** What the watch needs of another manager's GET /v1/cluster. */
export interface PeerClusterView {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly members: readonly { readonly id: string }[];
}

/**
 * A manager that refused this one's certificate because it applied this one's removal (401 with details.removed): the
 * removal is committed, and a removed id comes back only with a new certificate.
 */
export interface PeerRefusedRemoved {
  readonly refusedAsRemoved: string;
}

export interface RemovalWatchOptions {
  readonly self: NodeId;
  readonly clock: Clock;
  /** This node's term, the leader it knows (null: none), and whether its own configuration lists it. */
  readonly status: () => { readonly term: number; readonly leaderId: string | null; readonly listsSelf: boolean };
  /** The other managers this node knows, with their API addresses. */
  readonly peers: () => readonly { readonly id: string; readonly apiAddress: string }[];
  /** Peer `id`'s view of the cluster (its certificate must name it), or its refusal of this node as removed; null (or a rejection) when it gives none. */
  readonly askView: (apiAddress: string, id: string) => Promise<PeerClusterView | PeerRefusedRemoved | null>;
  /** The removal found (its reason), or undone (null: a leader speaks to this node again). */
  readonly onChange: (removedReason: string | null) => void;
  /** How long without a leader before the peers are asked, and then between two rounds of asking. */
  readonly quietMs: number;
}

export class RemovalWatch {
  /** On clock.monoMs(): a wall-clock step back must not put off the question by the length of the step. */
  private leaderlessSinceMs: number | null = null;
  private lastAskedMs = Number.NEGATIVE_INFINITY;
  private asking = false;
  private removed = false;

  constructor(private readonly o: RemovalWatchOptions) {}

  /** Called now and then (each second, say): asks the peers when this node has gone without a leader for quietMs. */
  tick(): void {
    const now = this.o.clock.monoMs();
    if (this.o.status().leaderId !== null) {
      this.leaderlessSinceMs = null;
      if (this.removed) this.set(false, null);
      return;
    }
    this.leaderlessSinceMs ??= now;
    // A node its own configuration leaves out says so already (a joiner before its first entries, or removed).
    if (!this.o.status().listsSelf) return;
    if (this.removed || this.asking || now - this.leaderlessSinceMs < this.o.quietMs || now - this.lastAskedMs < this.o.quietMs) return;
    this.lastAskedMs = now;
    this.asking = true;
    void this.ask().finally(() => (this.asking = false));
  }

  private async ask(): Promise<void> {
    const term = this.o.status().term;
    const answers = await Promise.all(this.o.peers().map((p) => this.o.askView(p.apiAddress, p.id).catch(() => null)));
    const refused = answers.find((a): a is PeerRefusedRemoved => a !== null && 'refusedAsRemoved' in a);
    if (refused !== undefined && this.o.status().leaderId === null) {
      this.set(true, refused.refusedAsRemoved);
      return;
    }
    const views = answers.filter((a): a is PeerClusterView => a !== null && !('refusedAsRemoved' in a));
    // A leader of an older term may be one cut off with an older configuration: only a current one settles it.
    const leader = views.find((v) => v.role === 'leader' && v.term >= term);
    if (leader === undefined || leader.members.some((m) => m.id === this.o.self)) return;
    if (this.o.status().leaderId !== null) return;
    this.set(true, `leader ${leader.id} of term ${leader.term} does not list it`);
  }

  private set(removed: boolean, reason: string | null): void {
    this.removed = removed;
    this.o.onChange(reason);
  }
}

/** A peer's GET /v1/cluster through the manager's pool (its certificate reaches the route); null for anything odd. */
export function httpClusterView(http: HttpClient, timeoutMs: number): (apiAddress: string, id: string) => Promise<PeerClusterView | PeerRefusedRemoved | null> {
  return async (apiAddress, id) => {
    const res = await http.request({ method: 'GET', url: http.baseUrlOf(apiAddress), path: '/v1/cluster', timeoutMs, server: { role: 'manager', id } });
    if (res.status === 401) {
      const e = (JSON.parse(res.text) as { error?: { message?: unknown; details?: { removed?: unknown } } }).error;
      return e?.details?.removed === true && typeof e.message === 'string' ? { refusedAsRemoved: `a manager at ${apiAddress} refuses it: ${e.message}` } : null;
    }
    if (res.status !== 200) return null;
    const v = JSON.parse(res.text) as Partial<PeerClusterView>;
    const wellFormed = typeof v.id === 'string' && typeof v.role === 'string' && typeof v.term === 'number' && Array.isArray(v.members) && v.members.every((m) => typeof (m as { id?: unknown } | null)?.id === 'string');
    return wellFormed ? (v as PeerClusterView) : null;
  };
}
