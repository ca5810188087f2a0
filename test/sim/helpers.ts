// Helpers for scenario tests on a SimCluster, after the classic Raft lab's: which entry each node applied at each
// index, `one` (get a command committed and applied by enough nodes), and waiting for a leader.
import type { NodeId } from '../../src/lib/ids.js';
import type { Entry } from '../../src/raft/types.js';
import { bytesEqual } from './checkers.js';
import { SimCluster, type ClusterOptions } from './cluster.js';
import { encodeCommand } from './state-machine.js';

/** What every node applied, by index; a restarted node overwrites its list as it re-applies the log. */
export class AppliedLog {
  readonly byNode: Entry[][];

  constructor(private readonly c: SimCluster) {
    this.byNode = c.nodes.map(() => []);
    c.onApply((node, entry) => {
      this.byNode[node.index]![entry.index] = entry;
    });
  }

  /** How many live nodes applied `data` at `index` (the checkers make sure nobody applied anything else there). */
  count(index: number, data: Uint8Array): number {
    let n = 0;
    for (const node of this.c.nodes) {
      const e = this.byNode[node.index]![index];
      if (node.up && node.applied >= index && e !== undefined && bytesEqual(e.data, data)) n++;
    }
    return n;
  }

  /** How many live nodes applied anything at `index`. */
  countAny(index: number): number {
    return this.c.nodes.filter((node) => node.up && node.applied >= index).length;
  }

  /** True if any node ever applied `data` (at any index). */
  everApplied(data: Uint8Array): boolean {
    return this.byNode.some((log) => log.some((e) => e !== undefined && bytesEqual(e.data, data)));
  }
}

let commandSeq = 0;

/** A fresh command for scenario tests (client 999, a process-wide sequence), with an 8-byte tag payload. */
export function cmd(): Uint8Array {
  return encodeCommand({ clientId: 999, seq: ++commandSeq }, 8);
}

export function newCluster(nodes: number, seed: number, o: Partial<ClusterOptions> = {}): { c: SimCluster; log: AppliedLog } {
  const c = new SimCluster({ ...o, seed, nodes });
  return { c, log: new AppliedLog(c) };
}

/** Waits for a leader to be elected and returns it; throws after ticksMax. */
export function electLeader(c: SimCluster, ticksMax = 100): NodeId {
  if (!c.runUntil(() => c.leader() !== null, ticksMax)) throw new Error(`no leader within ${ticksMax} ticks (seed ${c.seed})`);
  return c.leader()!;
}

/**
 * The lab's `one`: proposes `data` through whichever node thinks it leads (trying again after a leader change) until
 * at least `expected` live nodes applied it at one index; returns that index, or throws after ticksMax.
 */
export function one(c: SimCluster, log: AppliedLog, data: Uint8Array, expected: number, ticksMax = 300): number {
  const deadline = c.tick + ticksMax;
  let attempt = 0;
  while (c.tick < deadline) {
    const leaders = c.leaders();
    const via = leaders[attempt++ % Math.max(1, leaders.length)];
    const r = via === undefined ? null : c.propose(via, [data]);
    if (via !== undefined && r?.ok === true) {
      const index = c.status(via)!.lastIndex;
      if (c.runUntil(() => log.count(index, data) >= expected, 40)) return index;
    } else {
      c.runTicks(1);
    }
  }
  throw new Error(`one(): no agreement of ${expected} nodes within ${ticksMax} ticks (seed ${c.seed})`);
}
