// Reconciliation as a pure decision: from the managers' assignment list, the worker's task map and the containers the
// runtime really has, the list of corrections to make. The agent performs them; tests check the decisions directly.
import type { Assignment } from '../contracts/worker.js';
import type { FencingToken } from '../contracts/task-model.js';
import type { ContainerInfo } from '../runtime/types.js';
import { compareTokens, isActive, isFinal, ownedByInstance, tokenOfContainer, tokenText, type TaskEntry } from './task-entry.js';

export type Correction =
  | { readonly kind: 'start'; readonly assignment: Assignment; readonly reason: string }
  | { readonly kind: 'adopt'; readonly assignment: Assignment; readonly container: ContainerInfo; readonly reason: string }
  | { readonly kind: 'stop'; readonly token: FencingToken; readonly reason: string }
  | { readonly kind: 'lost'; readonly taskId: string; readonly reason: string }
  | { readonly kind: 'cleanup'; readonly taskId: string; readonly reason: string }
  | { readonly kind: 'remove-orphan'; readonly container: ContainerInfo; readonly reason: string };

export interface ReconcileInput {
  readonly assignments: readonly Assignment[];
  readonly entries: readonly TaskEntry[];
  /** Entries out of the map whose containers are being stopped (a replaced attempt): their containers are not orphans. */
  readonly retiring: readonly TaskEntry[];
  /** null when the runtime could not list its containers: only the map is reconciled then. */
  readonly containers: readonly ContainerInfo[] | null;
  /** When the assignment list was requested: entries that appeared later are not judged by it. */
  readonly listedAtMs: number;
  /**
   * This worker's instance: a container another instance made (labelInstance) is never an orphan here, though one
   * that carries an assignment's token is adopted (this worker's own, made before its data directory was emptied).
   */
  readonly instance?: string;
}

export function planReconcile(input: ReconcileInput): Correction[] {
  const entries = new Map(input.entries.map((e) => [e.taskId, e]));
  const assigned = newestPerTask(input.assignments);
  const containersByToken = new Map<string, ContainerInfo>();
  for (const c of input.containers ?? []) {
    const t = tokenOfContainer(c);
    if (t !== null) containersByToken.set(tokenKey(t), c);
  }
  const out: Correction[] = [];
  for (const a of assigned.values()) {
    const c = planAssigned(a, entries.get(a.taskId), containersByToken);
    if (c !== null) out.push(c);
  }
  for (const e of input.entries) {
    if (!assigned.has(e.taskId) && isActive(e.state) && e.stopping === null && e.createdAtMs < input.listedAtMs) {
      out.push({ kind: 'stop', token: tokenOf(e), reason: `${e.taskId} (${tokenText(e)}) is no longer assigned to this worker` });
    }
  }
  if (input.containers !== null) out.push(...planContainers(input, input.containers, out));
  return out;
}

function planAssigned(a: Assignment, e: TaskEntry | undefined, containers: ReadonlyMap<string, ContainerInfo>): Correction | null {
  const token = `${a.taskId} (${tokenText(a)})`;
  if (a.desiredState === 'stop') {
    // Nothing runs, or the list lags behind a newer attempt here: nothing to do.
    if (e === undefined || !isActive(e.state) || compareTokens(a, e) < 0) return null;
    // Its stop is under way (a container's stop grace can span many reconciliations): asking again changes nothing.
    if (e.stopping !== null && compareTokens(a, e) === 0) return null;
    return { kind: 'stop', token: tokenOf(a), reason: `${token} has desired state stop` };
  }
  if (e === undefined) {
    const container = containers.get(tokenKey(a));
    if (container !== undefined) return { kind: 'adopt', assignment: a, container, reason: `${token} is assigned and its container ${container.id} exists` };
    return { kind: 'start', assignment: a, reason: `${token} is assigned but not on this worker` };
  }
  // The same token (running, or finished at that attempt) and an older one (the list lags) need nothing.
  if (compareTokens(a, e) <= 0) return null;
  return { kind: 'start', assignment: a, reason: `${token} is assigned but this worker has ${tokenText(e)}` };
}

function planContainers(input: ReconcileInput, containers: readonly ContainerInfo[], planned: readonly Correction[]): Correction[] {
  const out: Correction[] = [];
  const present = new Set(containers.map((c) => c.id));
  const explained = new Set<string>();
  const starting = new Set<string>();
  for (const e of [...input.entries, ...input.retiring]) {
    if (e.containerId !== null) explained.add(e.containerId);
    else if (e.state === 'starting') starting.add(tokenKey(e));
  }
  for (const c of planned) if (c.kind === 'adopt') explained.add(c.container.id);
  for (const c of containers) {
    if (explained.has(c.id) || !ownedByInstance(c, input.instance)) continue;
    const t = tokenOfContainer(c);
    // Its run() is still in flight: the entry learns the id when it returns.
    if (t !== null && starting.has(tokenKey(t))) continue;
    const what = t === null ? 'has no valid minkube labels' : `(${t.taskId}, ${tokenText(t)}) belongs to no task of this worker`;
    out.push({ kind: 'remove-orphan', container: c, reason: `container ${c.id} ${what}` });
  }
  for (const e of input.entries) {
    if (e.containerId === null) continue;
    if (e.state === 'running' && !present.has(e.containerId) && (e.startedAtMs ?? Infinity) < input.listedAtMs) {
      out.push({ kind: 'lost', taskId: e.taskId, reason: `the container ${e.containerId} of ${e.taskId} (${tokenText(e)}) is gone` });
    } else if (isFinal(e.state) && e.cleanup === 'failed' && present.has(e.containerId)) {
      out.push({ kind: 'cleanup', taskId: e.taskId, reason: `the exited container ${e.containerId} of ${e.taskId} is still there` });
    }
  }
  return out;
}

function newestPerTask(assignments: readonly Assignment[]): Map<string, Assignment> {
  const out = new Map<string, Assignment>();
  for (const a of assignments) {
    const seen = out.get(a.taskId);
    if (seen === undefined || compareTokens(a, seen) > 0) out.set(a.taskId, a);
  }
  return out;
}

function tokenOf(t: FencingToken): FencingToken {
  return { taskId: t.taskId, attempt: t.attempt, term: t.term };
}

function tokenKey(t: FencingToken): string {
  return `${t.taskId}\u0000${t.attempt}\u0000${t.term}`;
}
