// Simulated clients: each has one command in flight with a unique id (clientId, seq), submits it through a random
// live node's driver (its proposal tracker forwards, resends and times out as in production), retries it with the
// same id through another node when that fails or takes too long, and counts it acknowledged once a driver it was
// submitted to resolves it (that node applied it). Readers issue linearizable reads (the driver's ReadIndex
// barrier) and check that the node they read from has applied every command acknowledged before the read began.
// At the end every acknowledged command must be applied exactly once everywhere.
import { backoffCeilingMs } from '../../src/lib/backoff.js';
import type { Random } from '../../src/lib/random.js';
import { SafetyViolation } from './checkers.js';
import type { SimCluster, SimNode, Submitted } from './cluster.js';
import { commandKey, encodeCommand, type CommandId } from './state-machine.js';

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
  /** Each tick, a linearizable read starts with this probability (at most `readsInFlightMax` at once). */
  readRate: number;
  readsInFlightMax: number;
}

export const defaultWorkload: WorkloadOptions = {
  clients: 3,
  thinkTicksMax: 3,
  retryTicksMin: 15,
  retryTicksMax: 30,
  rejectedRetryTicksMax: 3,
  payloadBytesMax: 16,
  readRate: 0.3,
  readsInFlightMax: 4,
};

interface Pending {
  readonly id: CommandId;
  readonly data: Uint8Array;
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
  reads: number;
  readsFailed: number;
}

/** Acknowledged commands the check of a read looks at: the newest ones before it began (older ones were checked). */
const readCheckCommandsMax = 32;

export class Workload {
  /** While false, clients issue no new commands but keep retrying the ones in flight. */
  active = true;
  readonly acked: CommandId[] = [];
  readonly stats: WorkloadStats = { proposed: 0, attempts: 0, rejected: 0, acked: 0, reads: 0, readsFailed: 0 };
  private readsInFlight = 0;
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
        if (tick >= c.pending.nextAttemptTick) this.attempt(c, c.pending, tick);
      } else if (this.active && !c.oneShot && tick >= c.nextCommandTick) {
        this.issue(c, tick);
      }
    }
    if (this.active && this.readsInFlight < this.o.readsInFlightMax && this.random.next() < this.o.readRate) this.startRead();
  }

  private issue(c: Client, tick: number): void {
    if (c.oneShot && c.seq > 0) return;
    c.seq++;
    const id: CommandId = { clientId: c.clientId, seq: c.seq };
    const data = encodeCommand(id, this.random.int(this.o.payloadBytesMax + 1));
    c.pending = { id, data, nextAttemptTick: tick, attempts: 0, accepted: 0 };
    this.stats.proposed++;
    this.attempt(c, c.pending, tick);
  }

  private attempt(c: Client, p: Pending, tick: number): void {
    // Mostly through a member of the configuration: a removed node that does not know it forwards to a leader that
    // drops it (still tried sometimes, while the workload is active).
    const members = this.cluster.memberNodes().filter((n) => n.up);
    const anyone = members.length === 0 || (this.active && this.random.next() < 0.1);
    const live = anyone ? this.cluster.liveNodes() : members;
    this.stats.attempts++;
    p.attempts++;
    const node = live.length === 0 ? undefined : live[this.random.int(live.length)];
    const span = this.o.retryTicksMax - this.o.retryTicksMin;
    // Back off (up to 8x): on a slow pipeline, eager retries of commands already in the log pile up duplicates
    // faster than they commit (the soak found a cluster that needed 1,000 ticks to drain such a backlog).
    const firstWaitTicks = this.o.retryTicksMin + this.random.int(span + 1);
    const waitTicks = backoffCeilingMs(p.accepted + 1, { baseMs: firstWaitTicks, capMs: 8 * firstWaitTicks }); // in ticks here
    const submitted = node === undefined ? null : this.cluster.submit(node.index, p.data, waitTicks * this.cluster.tickUnits);
    if (submitted === null) {
      this.stats.rejected++;
      p.nextAttemptTick = tick + 1 + this.random.int(this.o.rejectedRetryTicksMax);
      return;
    }
    p.accepted++;
    // The driver answers by the deadline unless its node crashes: then this client tries again after the wait.
    p.nextAttemptTick = tick + waitTicks + 1;
    submitted.then(
      (result) => this.onAcked(c, p, result),
      () => {
        this.stats.rejected++;
        if (c.pending === p) p.nextAttemptTick = Math.min(p.nextAttemptTick, this.cluster.tick + 1 + this.random.int(this.o.rejectedRetryTicksMax));
      },
    );
  }

  /** A driver applied the command: whichever attempt it was, the command is acknowledged. */
  private onAcked(c: Client, p: Pending, result: Submitted): void {
    if (c.pending !== p) return;
    if (result !== null && (result.clientId !== p.id.clientId || result.seq !== p.id.seq)) {
      this.cluster.report(new SafetyViolation('applied exactly once', `command ${commandKey(p.id)} was answered with the result of ${commandKey(result)}`));
      return;
    }
    c.pending = null;
    c.nextCommandTick = this.cluster.tick + this.random.int(this.o.thinkTicksMax + 1);
    this.acked.push(p.id);
    this.stats.acked++;
  }

  /**
   * A linearizable read through a random member: once its barrier resolves, that node's state machine must hold
   * every command acknowledged before the read began (the newest of them; older ones were checked by earlier reads).
   */
  private startRead(): void {
    const members = this.cluster.memberNodes().filter((n) => n.up);
    const node = members.length === 0 ? undefined : members[this.random.int(members.length)]!;
    if (node === undefined) return;
    const before = this.acked.slice(-readCheckCommandsMax);
    const barrier = this.cluster.read(node.index, 20 * this.cluster.tickUnits);
    if (barrier === null) return;
    const incarnation = node.incarnation;
    this.readsInFlight++;
    this.stats.reads++;
    barrier.then(
      () => {
        this.readsInFlight--;
        if (node.incarnation === incarnation) this.checkRead(node, before);
      },
      () => {
        this.readsInFlight--;
        this.stats.readsFailed++;
      },
    );
  }

  private checkRead(node: SimNode, before: readonly CommandId[]): void {
    for (const id of before) {
      if (node.sm.effectCount(id) === 0) {
        this.cluster.report(new SafetyViolation('linearizable reads', `${node.id} served a linearizable read without acknowledged command ${commandKey(id)} (applied up to ${node.applied})`));
        return;
      }
    }
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
