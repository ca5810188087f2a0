// The simulated network between nodes: which links are up (partitions into groups, one-way cuts) and what happens to
// each message on a link that is up (dropped, duplicated, delayed, reordered), all drawn from one seeded stream.
import type { Random } from '../../src/lib/random.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  readonly dropRate: number;
  /** Probability that a delivered message is delivered a second time (with its own delay). */
  readonly dupRate: number;
  /** Probability that a message is held back far longer than usual, so later ones overtake it. */
  readonly reorderRate: number;
  readonly delayUnitsMin: number;
  readonly delayUnitsMax: number;
  /** The extra delay of a reordered message is drawn up to this bound. */
  readonly reorderDelayUnitsMax: number;
}

export const reliableNetwork: NetworkFaults = {
  dropRate: 0,
  dupRate: 0,
  reorderRate: 0,
  delayUnitsMin: 1,
  delayUnitsMax: 20,
  reorderDelayUnitsMax: 0,
};

export class SimNetwork {
  faults: NetworkFaults;
  /** group[i]: the partition group of node i; nodes talk only within a group. */
  private readonly group: number[];
  /** cut[from * n + to]: the one-way link from -> to is down. */
  private readonly cut: boolean[];
  private readonly delays: number[] = [];

  constructor(
    private readonly n: number,
    private readonly random: Random,
    faults: NetworkFaults = reliableNetwork,
  ) {
    this.faults = faults;
    this.group = new Array<number>(n).fill(0);
    this.cut = new Array<boolean>(n * n).fill(false);
  }

  linkUp(from: number, to: number): boolean {
    return this.group[from] === this.group[to] && !this.cut[from * this.n + to];
  }

  /** Nodes listed in one group talk to each other only; nodes not listed form one more group together. */
  partition(groups: readonly (readonly number[])[]): void {
    this.group.fill(groups.length);
    groups.forEach((members, g) => {
      for (const i of members) this.group[i] = g;
    });
  }

  isolate(node: number): void {
    this.group[node] = this.n + 1 + node;
  }

  cutOneWay(from: number, to: number): void {
    this.cut[from * this.n + to] = true;
  }

  heal(): void {
    this.group.fill(0);
    this.cut.fill(false);
  }

  /** A short description of the current partitions, for traces. */
  describe(): string {
    const groups = new Map<number, number[]>();
    this.group.forEach((g, i) => groups.set(g, [...(groups.get(g) ?? []), i]));
    const parts = [...groups.values()].map((m) => m.join(','));
    const cuts: string[] = [];
    this.cut.forEach((c, k) => {
      if (c) cuts.push(`${Math.floor(k / this.n)}>${k % this.n}`);
    });
    return `groups [${parts.join(' | ')}]${cuts.length > 0 ? ` cuts ${cuts.join(' ')}` : ''}`;
  }

  /**
   * The fate of one message on an up link: the delays of its deliveries (empty when dropped, two when duplicated).
   * The returned array is reused by the next call.
   */
  plan(): readonly number[] {
    const f = this.faults;
    const out = this.delays;
    out.length = 0;
    if (f.dropRate > 0 && this.random.next() < f.dropRate) return out;
    out.push(this.delay());
    if (f.dupRate > 0 && this.random.next() < f.dupRate) out.push(this.delay());
    return out;
  }

  private delay(): number {
    const f = this.faults;
    const span = f.delayUnitsMax - f.delayUnitsMin;
    let d = f.delayUnitsMin + (span > 0 ? this.random.int(span + 1) : 0);
    if (f.reorderRate > 0 && this.random.next() < f.reorderRate) d += 1 + this.random.int(Math.max(1, f.reorderDelayUnitsMax));
    return d;
  }
}
