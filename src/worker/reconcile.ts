// Reconciliation as a pure decision: from the managers' assignment list, the worker's task map and the containers the
// runtime really has, the list of corrections to make. The agent performs them; tests check the decisions directly.
import type { Assignment } from '../contracts/worker.js';
import type { FencingToken } from '../contracts/task-model.js';
import type { ContainerInfo } from '../runtime/types.js';
import { compareTokens, isActive, isFinal, labelInstance, ownedByInstance, tokenOfContainer, tokenText, type TaskEntry } from './task-entry.js';

export type Correction =
  | { readonly kind: 'start'; readonly assignment: Assignment; readonly reason: string }
  /** It was started here before, and neither its entry nor its container is left: its outcome is unknown. */
  | { readonly kind: 'gone'; readonly assignment: Assignment; readonly reason: string }
  | { readonly kind: 'adopt'; readonly assignment: Assignment; readonly container: ContainerInfo; readonly reason: string }
  | { readonly kind: 'stop'; readonly token: FencingToken; readonly reason: string }
  | { readonly kind: 'lost'; readonly taskId: string; readonly reason: string }
  /** Running here, but its container has exited: its watch missed the exit (a cut engine connection) and looks again. */
  | { readonly kind: 'exited'; readonly taskId: string; readonly reason: string }
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
   * This worker's instance. A container another instance made (labelInstance) is this worker's own only when its
   * task is this cluster's (task ids are unique across clusters): one of the assignments or the map's tasks, or one
   * the managers said they know (knownTaskIds). Then it is adopted when it carries the assignment's token, and is a
   * stale copy (an orphan) otherwise. Any other is another cluster's worker of the same name, and left alone.
   */
  readonly instance?: string;
  /** Task ids of other instances' containers that the managers said are this cluster's (their records exist). */
  readonly knownTaskIds?: ReadonlySet<string>;
  /**
   * Attempts this worker ended and removed before it restarted (the output it kept, by task id): such an attempt is
   * never started again, even where the managers' record does not say it ran (its end was not reported yet).
   */
  readonly endedAttempts?: ReadonlyMap<string, number>;
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
    const c = planAssigned(a, entries.get(a.taskId), input.containers === null ? null : containersByToken, input.endedAttempts?.get(a.taskId));
    if (c !== null) out.push(c);
  }
  for (const e of input.entries) {
    if (!assigned.has(e.taskId) && isActive(e.state) && e.stopping === null && e.createdAtMs < input.listedAtMs) {
      out.push({ kind: 'stop', token: tokenOf(e), reason: `${e.taskId} (${tokenText(e)}) is no longer assigned to this worker` });
    }
  }
  if (input.containers !== null) out.push(...planContainers(input, input.containers, out, assigned));
  return out;
}

/** `containers`: by token, or null when the runtime could not list them (nothing is judged gone then). */
function planAssigned(a: Assignment, e: TaskEntry | undefined, containers: ReadonlyMap<string, ContainerInfo> | null, endedAttempt: number | undefined): Correction | null {
  const token = `${a.taskId} (${tokenText(a)})`;
  if (a.desiredState === 'stop') {
    // Nothing runs, or the list lags behind a newer attempt here: nothing to do.
    if (e === undefined || !isActive(e.state) || compareTokens(a, e) < 0) return null;
    // Its stop is under way (a container's stop grace can span many reconciliations): asking again changes nothing.
    if (e.stopping !== null && compareTokens(a, e) === 0) return null;
    return { kind: 'stop', token: tokenOf(a), reason: `${token} has desired state stop` };
  }
  if (e === undefined) {
    const container = containers?.get(tokenKey(a));
    if (container !== undefined) return { kind: 'adopt', assignment: a, container, reason: `${token} is assigned and its container ${container.id} exists` };
    // Started before (the managers' record says it runs here, or this worker kept the output of its end): a start now
    // would run it a second time under the same attempt, its first run's outcome lost. Unless its container may be
    // there: the runtime did not list them this time.
    const startedBefore = a.started === true || (endedAttempt !== undefined && endedAttempt >= a.attempt);
    if (startedBefore && containers === null) return null;
    if (a.started === true) return { kind: 'gone', assignment: a, reason: `${token} was started on this worker, which has neither it nor its container any more (removed while the worker was down?): its outcome is unknown` };
    if (endedAttempt !== undefined && endedAttempt >= a.attempt) return { kind: 'gone', assignment: a, reason: endedBeforeRestart(a) };
    return { kind: 'start', assignment: a, reason: `${token} is assigned but not on this worker` };
  }
  // The same token (running, or finished at that attempt) and an older one (the list lags) need nothing.
  if (compareTokens(a, e) <= 0) return null;
  return { kind: 'start', assignment: a, reason: `${token} is assigned but this worker has ${tokenText(e)}` };
}

function planContainers(input: ReconcileInput, containers: readonly ContainerInfo[], planned: readonly Correction[], assigned: ReadonlyMap<string, Assignment>): Correction[] {
  const out: Correction[] = [];
  const ourTasks = new Set([...assigned.keys(), ...input.entries.map((e) => e.taskId), ...input.retiring.map((e) => e.taskId), ...(input.knownTaskIds ?? [])]);
  const explained = new Set<string>();
  const starting = new Set<string>();
  for (const e of [...input.entries, ...input.retiring]) {
    if (e.containerId !== null) explained.add(e.containerId);
    else if (e.state === 'starting') starting.add(tokenKey(e));
  }
  for (const c of planned) if (c.kind === 'adopt') explained.add(c.container.id);
  for (const c of containers) {
    if (explained.has(c.id)) continue;
    const t = tokenOfContainer(c);
    const mine = ownedByInstance(c, input.instance);
    // Another instance's copy of a task of this cluster: this worker's own, made before its data directory was emptied.
    if (!mine && (t === null || !ourTasks.has(t.taskId))) continue;
    // Its run() is still in flight: the entry learns the id when it returns.
    if (t !== null && starting.has(tokenKey(t))) continue;
    const what = t === null
      ? 'has no valid minkube labels'
      : mine
        ? `(${t.taskId}, ${tokenText(t)}) belongs to no task of this worker`
        : `(${t.taskId}, ${tokenText(t)}) was made by an earlier instance of this worker (${c.labels[labelInstance] ?? ''}) and is not its current attempt`;
    out.push({ kind: 'remove-orphan', container: c, reason: `container ${c.id} ${what}` });
  }
  const byId = new Map(containers.map((c) => [c.id, c]));
  for (const e of input.entries) {
    if (e.containerId === null) continue;
    const c = byId.get(e.containerId);
    if (e.state === 'running' && c === undefined && (e.startedAtMs ?? Infinity) < input.listedAtMs) {
      out.push({ kind: 'lost', taskId: e.taskId, reason: `the container ${e.containerId} of ${e.taskId} (${tokenText(e)}) is gone` });
    } else if (e.state === 'running' && c !== undefined && c.state === 'exited') {
      out.push({ kind: 'exited', taskId: e.taskId, reason: `the container ${e.containerId} of ${e.taskId} (${tokenText(e)}) has exited, and its exit was not seen` });
    } else if (isFinal(e.state) && e.cleanup === 'failed' && byId.has(e.containerId)) {
      out.push({ kind: 'cleanup', taskId: e.taskId, reason: `the exited container ${e.containerId} of ${e.taskId} is still there` });
    }
  }
  return out;
}

/**
 * Task ids of the containers another instance of this worker id made whose tasks this worker knows nothing of (in
 * first-seen order): whether each is this cluster's (a stale copy) or another cluster's is the managers' to say.
 */
export function foreignTaskIds(input: Pick<ReconcileInput, 'assignments' | 'entries' | 'retiring' | 'instance'>, containers: readonly ContainerInfo[]): string[] {
  if (input.instance === undefined) return [];
  const ours = new Set([...input.assignments, ...input.entries, ...input.retiring].map((t) => t.taskId));
  const out = new Set<string>();
  for (const c of containers) {
    const t = tokenOfContainer(c);
    if (t !== null && !ownedByInstance(c, input.instance) && !ours.has(t.taskId)) out.add(t.taskId);
  }
  return [...out];
}

/** Why an assignment whose attempt this worker ended (and kept the output of) before it restarted is not started again. */
export function endedBeforeRestart(a: FencingToken): string {
  return `${a.taskId} (${tokenText(a)}) ended on this worker before it restarted, and its end was not reported: its outcome is unknown`;
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
