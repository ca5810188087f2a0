// Simulated clients: each has one command in flight with a unique id (clientId, seq), proposes it through a random
// live node, retries it with the same id when it is not applied in time, and counts it acknowledged once the node it
// was last proposed to applies it. At the end every acknowledged command must be applied exactly once everywhere.
import type { Random } from '../../src/lib/random.js';
import type { Entry } from '../../src/raft/types.js';
import { SafetyViolation } from './checkers.js';
import type { SimCluster, SimNode } from './cluster.js';
import { commandKey, encodeCommand, type AppliedCommand, type CommandId } from './state-machine.js';

export interface WorkloadOptions {
  /** Clients that keep issuing commands while the workload is active. */
  clients: number;
  /** A client waits up to this many ticks between an acknowledgement and its next command. */
  thinkTicksMax: number;
  /** An accepted proposal not applied after [min, max] ticks is proposed again, with the same id. */
  retryTicksMin: number;
  retryTicksMax: number;
  /** A rejected proposal (no leader, node down) is tried again after [1, this] ticks. */
  rejectedRetryTicksMax: number;
  /** Commands carry a payload of [0, this] bytes after their id. */
  payloadBytesMax: number;
}

export const defaultWorkload: WorkloadOptions = {
  clients: 3,
  thinkTicksMax: 3,
  retryTicksMin: 15,
  retryTicksMax: 30,
  rejectedRetryTicksMax: 3,
  payloadBytesMax: 16,
};

interface Pending {
  readonly id: CommandId;
  readonly data: Uint8Array;
  /** The node and incarnation it was last proposed to (-1 when no attempt was accepted yet). */
  proposedTo: number;
  incarnation: number;
  nextAttemptTick: number;
  attempts: number;
  /** Attempts a node accepted (the retry delay doubles with each, up to 8x). */
  accepted: number;
}

interface Client {
  readonly clientId: number;
  /** One-shot clients (from a proposal burst) issue a single command. */
  readonly oneShot: boolean;
  seq: number;
  pending: Pending | null;
  nextCommandTick: number;
}

export interface WorkloadStats {
  proposed: number;
  attempts: number;
  rejected: number;
  acked: number;
}

export class Workload {
  /** While false, clients issue no new commands but keep retrying the ones in flight. */
  active = true;
  readonly acked: CommandId[] = [];
  readonly stats: WorkloadStats = { proposed: 0, attempts: 0, rejected: 0, acked: 0 };
  private readonly clients: Client[] = [];
  private readonly byId = new Map<number, Client>();
  private nextClientId = 1;
  private readonly o: WorkloadOptions;

  constructor(
    private readonly cluster: SimCluster,
    private readonly random: Random,
    options: Partial<WorkloadOptions> = {},
  ) {
    this.o = { ...defaultWorkload, ...options };
    for (let i = 0; i < this.o.clients; i++) this.addClient(false);
    cluster.onClock((tick) => this.onClock(tick));
    cluster.onApply((node, entry, cmd) => this.onApplied(node, entry, cmd));
  }

  /** Commands proposed and not yet acknowledged. */
  pendingCount(): number {
    let n = 0;
    for (const c of this.clients) if (c.pending !== null) n++;
    return n;
  }

  /** `count` one-shot clients each propose one command at once. */
  burst(count: number): void {
    this.cluster.log(`burst of ${count} one-shot clients`);
    for (let i = 0; i < count; i++) {
      const c = this.addClient(true);
      this.issue(c, this.cluster.tick);
    }
  }

  private addClient(oneShot: boolean): Client {
    const c: Client = { clientId: this.nextClientId++, oneShot, seq: 0, pending: null, nextCommandTick: 0 };
    this.clients.push(c);
    this.byId.set(c.clientId, c);
    return c;
  }

  private onClock(tick: number): void {
    for (const c of this.clients) {
      if (c.pending !== null) {
        if (tick >= c.pending.nextAttemptTick) this.attempt(c.pending, tick);
      } else if (this.active && !c.oneShot && tick >= c.nextCommandTick) {
        this.issue(c, tick);
      }
    }
  }

  private issue(c: Client, tick: number): void {
    if (c.oneShot && c.seq > 0) return;
    c.seq++;
    const id: CommandId = { clientId: c.clientId, seq: c.seq };
    const data = encodeCommand(id, this.random.int(this.o.payloadBytesMax + 1));
    c.pending = { id, data, proposedTo: -1, incarnation: 0, nextAttemptTick: tick, attempts: 0, accepted: 0 };
    this.stats.proposed++;
    this.attempt(c.pending, tick);
  }

  private attempt(p: Pending, tick: number): void {
    // Mostly through a member of the configuration: a removed node that does not know it forwards to a leader that
    // drops it (still tried sometimes, while the workload is active).
    const members = this.cluster.memberNodes().filter((n) => n.up);
    const anyone = members.length === 0 || (this.active && this.random.next() < 0.1);
    const live = anyone ? this.cluster.liveNodes() : members;
    this.stats.attempts++;
    p.attempts++;
    const node = live.length === 0 ? undefined : live[this.random.int(live.length)];
    const r = node === undefined ? null : this.cluster.propose(node.index, [p.data]);
    if (node === undefined || r === null || !r.ok) {
      this.stats.rejected++;
      p.nextAttemptTick = tick + 1 + this.random.int(this.o.rejectedRetryTicksMax);
      return;
    }
    p.proposedTo = node.index;
    p.incarnation = node.incarnation;
    const span = this.o.retryTicksMax - this.o.retryTicksMin;
    // Back off (up to 8x): on a slow pipeline, eager retries of commands already in the log pile up duplicates
    // faster than they commit (the soak found a cluster that needed 1,000 ticks to drain such a backlog).
    const backoff = Math.min(8, 2 ** p.accepted++);
    p.nextAttemptTick = tick + (this.o.retryTicksMin + this.random.int(span + 1)) * backoff;
  }

  private onApplied(node: SimNode, _entry: Entry, cmd: AppliedCommand | null): void {
    if (cmd === null) return;
    const c = this.byId.get(cmd.clientId);
    const p = c?.pending;
    if (c === undefined || p === null || p === undefined || p.id.seq !== cmd.seq) return;
    if (p.proposedTo !== node.index || p.incarnation !== node.incarnation) return;
    c.pending = null;
    c.nextCommandTick = this.cluster.tick + this.random.int(this.o.thinkTicksMax + 1);
    this.acked.push(p.id);
    this.stats.acked++;
  }

  /** Every acknowledged command took effect exactly once on every live node (of `nodes`: the members). */
  verifyExactlyOnce(nodes: readonly SimNode[] = this.cluster.nodes): void {
    for (const node of nodes) {
      if (!node.up) continue;
      for (const id of this.acked) {
        const n = node.sm.effectCount(id);
        if (n !== 1) {
          throw new SafetyViolation('applied exactly once', `${node.id} applied acknowledged command ${commandKey(id)} ${n} times`);
        }
      }
    }
  }
}
