// Helpers for scenario tests on a SimCluster, after the classic Raft lab's: which entry each node applied at each
// index, `one` (get a command committed and applied by enough nodes), waiting for a leader, and an operator's
// membership changes.
import type { NodeId } from '../../src/lib/ids.js';
import type { ConfChange, Entry } from '../../src/raft/types.js';
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
export async function electLeader(c: SimCluster, ticksMax = 100): Promise<NodeId> {
  if (!await c.runUntil(() => c.leader() !== null, ticksMax)) throw new Error(`no leader within ${ticksMax} ticks (seed ${c.seed})`);
  return c.leader()!;
}

/**
 * The lab's `one`: proposes `data` through whichever node thinks it leads (trying again after a leader change) until
 * at least `expected` live nodes applied it at one index; returns that index, or throws after ticksMax.
 */
export async function one(c: SimCluster, log: AppliedLog, data: Uint8Array, expected: number, ticksMax = 300): Promise<number> {
  const deadline = c.tick + ticksMax;
  let attempt = 0;
  while (c.tick < deadline) {
    const leaders = c.leaders();
    const via = leaders[attempt++ % Math.max(1, leaders.length)];
    const r = via === undefined ? null : c.propose(via, [data]);
    if (via !== undefined && r?.ok === true) {
      const index = c.status(via)!.lastIndex;
      if (await c.runUntil(() => log.count(index, data) >= expected, 40)) return index;
    } else {
      await c.runTicks(1);
    }
  }
  throw new Error(`await one(): no agreement of ${expected} nodes within ${ticksMax} ticks (seed ${c.seed})`);
}

/**
 * The operator's side of a membership change: propose it through whoever leads (again after a refusal such as a
 * change in progress or a leader change) until the leader has it committed; returns the config entry's index.
 */
export async function changeMembers(c: SimCluster, change: ConfChange, ticksMax = 300): Promise<number> {
  const deadline = c.tick + ticksMax;
  while (c.tick < deadline) {
    const leader = c.leader();
    const r = leader === null ? null : c.proposeConfChange(leader, change);
    if (r?.ok === true) {
      const index = r.index;
      const committed = (): boolean => c.leaders().some((id) => c.status(id)!.commitIndex >= index && c.entryAt(id, index)?.type === 'config');
      if (await c.runUntil(committed, 60)) return index;
    } else if (r !== null && !r.ok && !['CONF_CHANGE_IN_PROGRESS', 'NOT_LEADER', 'PROPOSAL_DROPPED', 'LEARNER_NOT_CAUGHT_UP'].includes(r.reason)) {
      throw new Error(`${change.type} ${change.nodeId} refused: ${r.reason}`);
    } else {
      await c.runTicks(1);
    }
  }
  throw new Error(`${change.type} ${change.nodeId}: not committed within ${ticksMax} ticks (seed ${c.seed})`);
}

/** Waits until the leader's progress shows `id` holding everything committed; throws after ticksMax. */
export async function waitCaughtUp(c: SimCluster, id: NodeId, ticksMax = 200): Promise<void> {
  const caughtUp = (): boolean => {
    const leader = c.leader();
    const st = leader === null ? null : c.status(leader);
    const pr = st?.progress.get(id);
    return st !== null && st !== undefined && pr !== undefined && pr.match >= st.commitIndex;
  };
  if (!await c.runUntil(caughtUp, ticksMax)) throw new Error(`${id} did not catch up within ${ticksMax} ticks (seed ${c.seed})`);
}
