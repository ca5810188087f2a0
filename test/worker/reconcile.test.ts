// The reconciliation planner as a pure function: which corrections follow from assignments, entries and containers.
import { describe, expect, it } from 'vitest';
import type { Assignment } from '../../src/contracts/worker.js';
import type { ContainerInfo } from '../../src/runtime/types.js';
import { planReconcile, type ReconcileInput } from '../../src/worker/reconcile.js';
import { containerLabels, newEntry, type LocalState, type TaskEntry } from '../../src/worker/task-entry.js';

const listedAtMs = 1000;

function entry(taskId: string, state: LocalState, opts: { attempt?: number; containerId?: string | null; createdAtMs?: number; startedAtMs?: number; cleanup?: TaskEntry['cleanup'] } = {}): TaskEntry {
  const e = newEntry({ taskId, attempt: opts.attempt ?? 1, term: 1 }, { image: 'x' }, opts.createdAtMs ?? 500);
  e.state = state;
  e.containerId = opts.containerId === undefined ? `c-${taskId}` : opts.containerId;
  e.startedAtMs = opts.startedAtMs ?? 600;
  e.cleanup = opts.cleanup ?? 'none';
  return e;
}

function container(id: string, taskId: string | null, attempt = 1, state: ContainerInfo['state'] = 'running'): ContainerInfo {
  const labels = taskId === null ? { 'minkube.worker': 'w1' } : containerLabels('w1', { taskId, attempt, term: 1 });
  return { id, name: id, image: 'x', labels, state, exitCode: null };
}

function run(taskId: string, attempt = 1, desiredState: 'run' | 'stop' = 'run'): Assignment {
  return { taskId, attempt, term: 1, spec: { image: 'x' }, desiredState };
}

function plan(input: Partial<ReconcileInput>) {
  return planReconcile({ assignments: [], entries: [], retiring: [], containers: [], listedAtMs, ...input }).map((c) => c.kind + ':' + c.reason);
}

describe('planReconcile', () => {
  it("another instance's containers of a task this cluster may not know are never orphans; ours and unlabelled ones (made before instances) are", () => {
    const ofInstance = (id: string, taskId: string, instance: string): ContainerInfo => ({ ...container(id, taskId), labels: containerLabels('w1', { taskId, attempt: 1, term: 1 }, instance) });
    const out = plan({
      instance: 'aaaaaaaaaaaa',
      containers: [ofInstance('c-foreign', 'f', 'bbbbbbbbbbbb'), ofInstance('c-ours', 'o', 'aaaaaaaaaaaa'), container('c-legacy', 'l')],
    });
    expect(out).toEqual(['remove-orphan:container c-ours (o, attempt 1 term 1) belongs to no task of this worker', 'remove-orphan:container c-legacy (l, attempt 1 term 1) belongs to no task of this worker']);
    // One that carries an assignment's token is this worker's own (made before its data directory was emptied): adopted.
    expect(plan({ instance: 'aaaaaaaaaaaa', assignments: [run('f')], containers: [ofInstance('c-foreign', 'f', 'bbbbbbbbbbbb')] })).toEqual([
      'adopt:f (attempt 1 term 1) is assigned and its container c-foreign exists',
    ]);
  });

  it("another instance's copy of one of this cluster's tasks that is not its current attempt is a stale copy: removed, whatever instance made it", () => {
    const ofInstance = (id: string, taskId: string, attempt: number, instance: string): ContainerInfo => ({ ...container(id, taskId, attempt), labels: containerLabels('w1', { taskId, attempt, term: 1 }, instance) });
    const out = plan({
      instance: 'cccccccccccc',
      // a: attempt 2 assigned now, attempt 1 left by the instance before the data directory was emptied (outside tester).
      // e: ended (lost 3 times), no longer assigned; the managers said its record exists. f: a task nobody here knows.
      assignments: [run('a', 2)],
      entries: [entry('a', 'running', { attempt: 2, containerId: 'c-a2' })],
      containers: [
        { ...ofInstance('c-a2', 'a', 2, 'cccccccccccc') }, ofInstance('c-a1', 'a', 1, 'aaaaaaaaaaaa'),
        ofInstance('c-e2', 'e', 2, 'aaaaaaaaaaaa'), ofInstance('c-e3', 'e', 3, 'bbbbbbbbbbbb'), ofInstance('c-f', 'f', 1, 'dddddddddddd'),
      ],
      knownTaskIds: new Set(['e']),
    });
    expect(out).toEqual([
      'remove-orphan:container c-a1 (a, attempt 1 term 1) was made by an earlier instance of this worker (aaaaaaaaaaaa) and is not its current attempt',
      'remove-orphan:container c-e2 (e, attempt 2 term 1) was made by an earlier instance of this worker (aaaaaaaaaaaa) and is not its current attempt',
      'remove-orphan:container c-e3 (e, attempt 3 term 1) was made by an earlier instance of this worker (bbbbbbbbbbbb) and is not its current attempt',
    ]);
  });

  it('an assignment started here before, with neither its entry nor its container left, is gone (outcome unknown), never started again', () => {
    const started: Assignment = { ...run('s'), started: true };
    expect(plan({ assignments: [started, run('n')] })).toEqual([
      'gone:s (attempt 1 term 1) was started on this worker, which has neither it nor its container any more (removed while the worker was down?): its outcome is unknown',
      'start:n (attempt 1 term 1) is assigned but not on this worker',
    ]);
    // The runtime could not list its containers: it may be there, so nothing is judged (the next pass will).
    expect(plan({ assignments: [started, run('n')], containers: null })).toEqual(['start:n (attempt 1 term 1) is assigned but not on this worker']);
    // Its container is still there (of any instance): adopted as ever.
    expect(plan({ assignments: [started], containers: [container('c-s', 's')] })).toEqual(['adopt:s (attempt 1 term 1) is assigned and its container c-s exists']);
    // The record still says scheduled (its end was not reported), but this worker kept the output of that attempt's end.
    expect(plan({ assignments: [run('k', 2), run('j', 3)], endedAttempts: new Map([['k', 2], ['j', 2]]) })).toEqual([
      'gone:k (attempt 2 term 1) ended on this worker before it restarted, and its end was not reported: its outcome is unknown',
      'start:j (attempt 3 term 1) is assigned but not on this worker',
    ]);
  });

  it('a running task whose container is gone is lost; one started after the list is not judged', () => {
    const gone = entry('gone', 'running');
    const fresh = entry('fresh', 'running', { startedAtMs: 1500, createdAtMs: 1400 });
    expect(plan({ assignments: [run('gone'), run('fresh')], entries: [gone, fresh] })).toEqual([
      'lost:the container c-gone of gone (attempt 1 term 1) is gone',
    ]);
  });

  it('a running task whose container has exited is exited (its watch looks again); a finished one, or a running container, needs nothing', () => {
    const missed = entry('m', 'running');
    const ended = entry('e', 'failed');
    const live = entry('l', 'running');
    const out = plan({
      assignments: [run('m'), run('e'), run('l')],
      entries: [missed, ended, live],
      containers: [container('c-m', 'm', 1, 'exited'), container('c-e', 'e', 1, 'exited'), container('c-l', 'l')],
    });
    expect(out).toEqual(['exited:the container c-m of m (attempt 1 term 1) has exited, and its exit was not seen']);
  });

  it('a container whose run() is in flight is not an orphan; a replaced attempt being stopped is not either', () => {
    const starting = entry('s', 'starting', { containerId: null });
    const retiring = entry('r', 'running', { containerId: 'c-old' });
    const out = plan({
      assignments: [run('s')],
      entries: [starting],
      retiring: [retiring],
      containers: [container('c-new', 's'), container('c-old', 'r'), container('c-x', null)],
    });
    expect(out).toEqual(['remove-orphan:container c-x has no valid minkube labels']);
  });

  it('a task whose stop is under way is not asked to stop again (its grace may span many reconciliations)', () => {
    const stopping = entry('s', 'running');
    stopping.stopping = new Promise(() => {});
    const unassigned = entry('u', 'running');
    unassigned.stopping = new Promise(() => {});
    const fresh = entry('f', 'running');
    expect(plan({ assignments: [run('s', 1, 'stop'), run('f', 1, 'stop')], entries: [stopping, unassigned, fresh], containers: null })).toEqual([
      'stop:f (attempt 1 term 1) has desired state stop',
    ]);
  });

  it('adopts an assigned container the map does not know, instead of starting a second one', () => {
    const out = plan({ assignments: [run('t', 2)], containers: [container('c-t', 't', 2), container('c-t1', 't', 1, 'exited')] });
    expect(out).toEqual([
      'adopt:t (attempt 2 term 1) is assigned and its container c-t exists',
      'remove-orphan:container c-t1 (t, attempt 1 term 1) belongs to no task of this worker',
    ]);
  });

  it('retries the removal of an exited container that failed to be removed', () => {
    const done = entry('d', 'succeeded', { cleanup: 'failed' });
    expect(plan({ entries: [done], containers: [container('c-d', 'd', 1, 'exited')] })).toEqual([
      'cleanup:the exited container c-d of d is still there',
    ]);
  });

  it('with no container list, reconciles the map only; an older listed attempt changes nothing', () => {
    const e = entry('t', 'running', { attempt: 3 });
    expect(plan({ assignments: [run('t', 2), run('t', 1, 'stop'), run('n')], entries: [e], containers: null })).toEqual([
      'start:n (attempt 1 term 1) is assigned but not on this worker',
    ]);
  });

  it('the newest of duplicate assignments wins', () => {
    const e = entry('t', 'running', { attempt: 1 });
    expect(plan({ assignments: [run('t', 2), run('t', 1)], entries: [e], containers: [container('c-t', 't')] })).toEqual([
      'start:t (attempt 2 term 1) is assigned but this worker has attempt 1 term 1',
    ]);
  });
});
