// Which finished task records retention removes now (tasks.retention { finishedMax, finishedAgeS }): a pure decision
// over the store's state-ordered indexes. Oldest first (creation order, the ids' order); past finishedMax the oldest
// go whatever their age, then every one that ended finishedAgeS ago or more; at most batchMax at a time. Pending,
// scheduled, running and lost tasks (placed but not confirmed ended by their worker) are never chosen.
import { finalTaskStates, type TaskRecord, type TaskState } from '../contracts/task-model.js';

export interface RetentionPolicy {
  readonly finishedMax: number;
  readonly finishedAgeS: number;
}

/** What the selection reads of the task store. */
export interface RetentionView {
  countIn(state: TaskState): number;
  /** Ids of one state in creation order. */
  idsIn(state: TaskState): Iterable<string>;
  task(id: string): TaskRecord | undefined;
}

/** When a finished task ended: its last transition (its final one). */
export function endedAtMs(t: TaskRecord): number {
  return t.history.at(-1)?.atMs ?? Date.parse(t.updatedAt);
}

export function finishedCount(view: RetentionView): number {
  let n = 0;
  for (const s of finalTaskStates) n += view.countIn(s);
  return n;
}

/** The ids to remove now, oldest first, at most batchMax. */
export function selectForRemoval(view: RetentionView, policy: RetentionPolicy, nowMs: number, batchMax: number): string[] {
  const out: string[] = [];
  if (batchMax <= 0) return out;
  const overCount = Math.max(0, finishedCount(view) - policy.finishedMax);
  const cutoffMs = nowMs - policy.finishedAgeS * 1000;
  for (const id of mergeSorted([...finalTaskStates].map((s) => view.idsIn(s)))) {
    if (out.length >= batchMax) break;
    const t = view.task(id);
    if (t === undefined || !finalTaskStates.has(t.state)) continue;
    if (out.length < overCount || endedAtMs(t) <= cutoffMs) out.push(id);
  }
  return out;
}

/** Merges ascending iterables of distinct ids into one ascending sequence. */
export function* mergeSorted(sources: Iterable<string>[]): Generator<string> {
  const its = sources.map((s) => s[Symbol.iterator]());
  const heads = its.map((it) => it.next());
  for (;;) {
    let min = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i]!;
      if (h.done !== true && (min === -1 || h.value < (heads[min]!.value as string))) min = i;
    }
    if (min === -1) return;
    yield heads[min]!.value as string;
    heads[min] = its[min]!.next();
  }
}
