// The nemesis: a fault schedule drawn from the seed (kills and restarts of random managers and of the leader, pauses,
// partitions made by the link proxies, slow links, worker kills), run one fault at a time, each healed before the next.
import type { Random } from '../../src/lib/random.js';
import type { ChaosCluster } from './cluster.js';
import type { FaultRecord } from './history.js';
import { findLeader, waitForHealth } from './probe.js';
import type { LinkMode } from './proxy.js';

export const faultKinds = [
  'kill', 'kill-leader', 'pause', 'pause-leader', 'partition-minority', 'partition-leader-minority', 'isolate-leader', 'bridge', 'delay', 'kill-worker',
] as const;
export type FaultKind = (typeof faultKinds)[number];
export function isFaultKind(s: string): s is FaultKind {
  return (faultKinds as readonly string[]).includes(s);
}
type LinkFaultKind = Extract<FaultKind, 'partition-minority' | 'partition-leader-minority' | 'isolate-leader' | 'bridge' | 'delay'>;

const weights: Record<FaultKind, number> = {
  'kill': 2,
  'kill-leader': 2,
  'pause': 1.5,
  'pause-leader': 1.5,
  'partition-minority': 1,
  'partition-leader-minority': 1,
  'isolate-leader': 1.5,
  'bridge': 1,
  'delay': 0.7,
  'kill-worker': 0.8,
};

/** One fault of the schedule; which nodes it hits is drawn here, except "the leader", known only when it strikes. */
export interface PlannedFault {
  readonly kind: FaultKind;
  /** Quiet time before it. */
  readonly gapMs: number;
  /** How long it lasts before it is healed (a killed node is restarted). */
  readonly holdMs: number;
  /** A permutation of the manager indexes: the first ones are the victims. */
  readonly order: readonly number[];
  readonly workerIndex: number;
  readonly drop: Extract<LinkMode, { kind: 'drop' }>;
  readonly delayMs: number;
}

export interface NemesisOptions {
  readonly managers: number;
  readonly workers: number;
  readonly durationMs: number;
  /** Restrict the schedule to these kinds (all by default). */
  readonly kinds?: readonly FaultKind[];
}

/** Draws the schedule: enough faults to fill the duration (the runner stops at the deadline). */
export function planFaults(random: Random, o: NemesisOptions): PlannedFault[] {
  const kinds = (o.kinds ?? faultKinds).filter((k) => k !== 'kill-worker' || o.workers > 0);
  const total = kinds.reduce((s, k) => s + weights[k], 0);
  const plan: PlannedFault[] = [];
  for (let plannedMs = 0; plannedMs < o.durationMs && plan.length < 10_000; ) {
    let dice = random.next() * total;
    const kind = kinds.find((k) => (dice -= weights[k]) < 0) ?? kinds[0]!;
    const f: PlannedFault = {
      kind,
      gapMs: 1000 + random.int(2000),
      holdMs: holdFor(kind, random),
      order: permutation(o.managers, random),
      workerIndex: random.int(Math.max(1, o.workers)),
      drop: { kind: 'drop', existing: random.next() < 0.5 ? 'hold' : 'destroy', incoming: random.next() < 0.5 ? 'hold' : 'refuse' },
      delayMs: 50 + random.int(350),
    };
    plan.push(f);
    plannedMs += f.gapMs + f.holdMs + (kind.startsWith('kill') ? 2000 : 0);
  }
  return plan;
}

function holdFor(kind: FaultKind, random: Random): number {
  switch (kind) {
    case 'kill':
    case 'kill-leader':
      return random.int(4000);
    case 'pause':
    case 'pause-leader':
      return 1000 + random.int(4000);
    case 'kill-worker':
      // Well under workerTtlMs + lostGraceMs: a longer outage hands the worker's tasks to another worker while the
      // first copy still runs, which is the documented trade-off, not a bug.
      return random.int(1000);
    case 'partition-minority':
    case 'partition-leader-minority':
    case 'isolate-leader':
    case 'bridge':
    case 'delay':
      return 2000 + random.int(5000);
  }
}

function permutation(n: number, random: Random): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Runs a plan against the cluster, one fault at a time, and records what it did. */
export class Nemesis {
  readonly records: FaultRecord[] = [];
  private stopped = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly plan: readonly PlannedFault[],
    private readonly nowMs: () => number,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs faults until the plan ends or stop() is called; the fault in progress is healed before it returns. */
  async run(): Promise<void> {
    for (const f of this.plan) {
      await this.pause(f.gapMs);
      if (this.stopped) return;
      await this.strike(f);
    }
  }

  /** Cuts short the current fault's hold and the gap; run() returns after healing it. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Heals everything: links, paused and dead nodes. */
  async healAll(): Promise<void> {
    this.cluster.network.heal();
    for (const id of this.cluster.nodes.keys()) {
      this.cluster.resume(id);
      if (!this.cluster.isUp(id)) this.cluster.start(id);
    }
  }

  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
  }

  private async strike(f: PlannedFault): Promise<void> {
    const ids = this.cluster.managerIds;
    const victims = f.order.map((i) => ids[i]!);
    const leader = f.kind.includes('leader') ? await findLeader(this.cluster) : null;
    // No leader known (an election under way): the fault hits the first drawn manager instead.
    const target = leader ?? victims[0]!;
    const record: FaultRecord = { kind: f.kind, detail: '', startMs: this.nowMs(), endMs: null };
    const note = f.kind.includes('leader') && leader === null ? ' (no leader known)' : '';
    switch (f.kind) {
      case 'kill':
      case 'kill-leader':
        record.detail = `SIGKILL ${target}${note}, restart after ${f.holdMs} ms`;
        this.begin(record);
        await this.cluster.kill(target);
        await this.pause(f.holdMs);
        await this.restart(target);
        break;
      case 'kill-worker': {
        const w = this.cluster.workerIds[f.workerIndex]!;
        record.detail = `SIGKILL ${w}, restart after ${f.holdMs} ms`;
        this.begin(record);
        await this.cluster.kill(w);
        await this.pause(f.holdMs);
        await this.restart(w);
        break;
      }
      case 'pause':
      case 'pause-leader':
        record.detail = `SIGSTOP ${target}${note} for ${f.holdMs} ms`;
        this.begin(record);
        this.cluster.pause(target);
        await this.pause(f.holdMs);
        this.cluster.resume(target);
        break;
      case 'partition-minority':
      case 'partition-leader-minority':
      case 'isolate-leader':
      case 'bridge':
      case 'delay':
        this.linkFault(f.kind, f, record, victims, target, note);
        await this.pause(f.holdMs);
        this.cluster.network.heal();
        break;
    }
    record.endMs = this.nowMs();
    this.log(`nemesis: healed ${f.kind} at ${(record.endMs / 1000).toFixed(1)} s`);
  }

  private linkFault(kind: LinkFaultKind, f: PlannedFault, record: FaultRecord, victims: string[], target: string, note: string): void {
    const net = this.cluster.network;
    const half = Math.floor(victims.length / 2);
    const how = `${f.drop.existing}/${f.drop.incoming}`;
    let groups: string[][];
    switch (kind) {
      case 'partition-minority':
        groups = [victims.slice(0, half), victims.slice(half)];
        break;
      case 'partition-leader-minority': {
        const others = victims.filter((v) => v !== target);
        groups = [[target, ...others.slice(0, half - 1)], others.slice(half - 1)];
        break;
      }
      case 'isolate-leader':
        groups = [[target], victims.filter((v) => v !== target)];
        break;
      case 'bridge': {
        // victims[0] is the bridge: it sees both halves, which do not see each other.
        const rest = victims.slice(1);
        const mid = Math.ceil(rest.length / 2);
        groups = [rest.slice(0, mid), rest.slice(mid)];
        record.detail = `bridge ${victims[0]} between ${groups[0]!.join(' ')} | ${groups[1]!.join(' ')} (${how}) for ${f.holdMs} ms`;
        this.begin(record);
        net.partition(groups, f.drop);
        return;
      }
      case 'delay': {
        const slow = victims[0]!;
        record.detail = `delay ${f.delayMs} ms on every link of ${slow} for ${f.holdMs} ms`;
        this.begin(record);
        for (const other of victims.slice(1)) net.delayBetween(slow, other, f.delayMs, f.delayMs / 4);
        return;
      }
    }
    record.detail = `partition ${groups.map((g) => g.join(' ')).join(' | ')}${note} (${how}) for ${f.holdMs} ms`;
    this.begin(record);
    net.partition(groups, f.drop);
  }

  private begin(record: FaultRecord): void {
    this.records.push(record);
    this.log(`nemesis: ${(record.startMs / 1000).toFixed(1)} s ${record.kind}: ${record.detail}`);
  }

  /** Restarts a killed node and gives it a bounded time to answer, so faults do not pile up on a slow start. */
  private async restart(id: string): Promise<void> {
    this.cluster.start(id);
    if (!(await waitForHealth(this.cluster, id, 15_000))) this.log(`nemesis: ${id} did not answer /health within 15 s of its restart`);
  }
}

