// Placement's pure parts: constraints, capacity and reservations in round-robin, `task why` verdicts, preemption's
// choice of victims, the queue order, and the counts that spread a service's replicas.
import { describe, expect, it } from 'vitest';
import { parseConstraint, satisfies, type Constraint } from '../../src/lib/constraints.js';
import { constraintsProblem } from '../../src/kv/placement-schemas.js';
import { explainPlacement } from '../../src/scheduler/explain.js';
import { leastLoaded } from '../../src/scheduler/least-loaded.js';
import type { PlacementTask, PlacementWorker } from '../../src/scheduler/policy.js';
import { planPreemption } from '../../src/scheduler/preemption.js';
import { queueOrder } from '../../src/scheduler/priority.js';
import { roundRobin } from '../../src/scheduler/round-robin.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { addSpreadCounts, placementTask } from '../../src/manager/placement-input.js';
import type { TaskRecord } from '../../src/contracts/task-model.js';

const c = (text: string): Constraint => parseConstraint(text) as Constraint;
const task = (id: string, o: Partial<PlacementTask> = {}): PlacementTask => ({ id, attempt: 1, avoidWorkerId: null, ...o });
const worker = (id: string, o: Partial<PlacementWorker> = {}): PlacementWorker => ({ id, activeTasks: 0, cpuUtilization: null, ...o });

describe('constraints', () => {
  it('parse key==value, key!=value and key; refuse anything else naming it', () => {
    expect(parseConstraint('zone==a')).toEqual({ kind: 'eq', key: 'zone', value: 'a' });
    expect(parseConstraint('disk!=hdd')).toEqual({ kind: 'ne', key: 'disk', value: 'hdd' });
    expect(parseConstraint('gpu')).toEqual({ kind: 'has', key: 'gpu' });
    expect(typeof parseConstraint('zone=a')).toBe('string');
    expect(typeof parseConstraint('==a')).toBe('string');
    expect(typeof parseConstraint('zone==a b')).toBe('string');
    expect(constraintsProblem(['zone==a', 'bad one'], 'spec.')).toMatch(/^spec\.constraints\[1\]: "bad one": expected/);
    expect(constraintsProblem(['zone==a', 'gpu', 'disk!=hdd'])).toBeNull();
  });

  it('hold on labels as documented: != holds when the label is unset', () => {
    const labels = { zone: 'a', disk: 'ssd' };
    expect(satisfies(labels, c('zone==a'))).toBe(true);
    expect(satisfies(labels, c('zone==b'))).toBe(false);
    expect(satisfies(labels, c('disk!=hdd'))).toBe(true);
    expect(satisfies({}, c('disk!=hdd'))).toBe(true);
    expect(satisfies(labels, c('gpu'))).toBe(false);
    expect(satisfies({ gpu: '' }, c('gpu'))).toBe(true);
  });
});

describe('round-robin with constraints and capacity', () => {
  it('places only on workers whose labels satisfy every constraint, rotating among them', () => {
    const workers = [worker('w1', { labels: { zone: 'a' } }), worker('w2', { labels: { zone: 'b' } }), worker('w3', { labels: { zone: 'a', gpu: '1' } })];
    const tasks = [task('t1', { constraints: [c('zone==a')] }), task('t2', { constraints: [c('zone==a')] }), task('t3', { constraints: [c('zone==a')] }), task('t4', { constraints: [c('gpu')] }), task('t5', { constraints: [c('zone!=a')] })];
    const d = roundRobin.place({ tasks, workers, cursor: null });
    expect(d.placements.map((p) => [p.taskId, p.workerId])).toEqual([['t1', 'w1'], ['t2', 'w3'], ['t3', 'w1'], ['t4', 'w3'], ['t5', 'w2']]);
  });

  it('reserves resources within one decision and leaves a task that fits nowhere unplaced', () => {
    const workers = [worker('w1', { free: { cpus: 2, memoryMb: 1024 } }), worker('w2', { free: { cpus: 1, memoryMb: 4096 } })];
    const tasks = [task('big', { cpus: 2 }), task('a', { cpus: 1 }), task('b', { cpus: 1 }), task('huge', { cpus: 3 }), task('mem', { memoryMb: 512 })];
    const d = roundRobin.place({ tasks, workers, cursor: null });
    // big fills w1's cores; a goes to w2 (its turn); b finds no core left; huge fits nowhere; mem (memory only) takes
    // the next in turn, w1, whose memory is free.
    expect(d.placements.map((p) => [p.taskId, p.workerId])).toEqual([['big', 'w1'], ['a', 'w2'], ['mem', 'w1']]);
    expect(d.cursor).toBe('w1');
  });

  it('a worker without reported capacity takes anything; no placement keeps the cursor', () => {
    expect(roundRobin.place({ tasks: [task('t', { cpus: 64 })], workers: [worker('w1')], cursor: null }).placements).toHaveLength(1);
    expect(roundRobin.place({ tasks: [task('t', { cpus: 64 })], workers: [worker('w1', { free: { cpus: 1, memoryMb: 1 } })], cursor: 'w0' })).toEqual({ placements: [], cursor: 'w0' });
  });

  it('a retry avoids its last worker when another is eligible, and takes it when it is the only one', () => {
    const workers = [worker('w1', { labels: { zone: 'a' } }), worker('w2', { labels: { zone: 'b' } })];
    expect(roundRobin.place({ tasks: [task('t', { avoidWorkerId: 'w1' })], workers, cursor: null }).placements[0]!.workerId).toBe('w2');
    expect(roundRobin.place({ tasks: [task('t', { avoidWorkerId: 'w1', constraints: [c('zone==a')] })], workers, cursor: null }).placements[0]!.workerId).toBe('w1');
  });

  it('least-loaded honours the same eligibility', () => {
    const workers = [worker('w1', { labels: { zone: 'a' }, activeTasks: 5 }), worker('w2', { labels: { zone: 'b' } })];
    expect(leastLoaded.place({ tasks: [task('t', { constraints: [c('zone==a')] })], workers, cursor: null }).placements[0]!.workerId).toBe('w1');
    expect(leastLoaded.place({ tasks: [task('t', { cpus: 1 })], workers: [worker('w1', { free: { cpus: 0.5, memoryMb: 10 } })], cursor: null }).placements).toEqual([]);
  });
});

describe('task why', () => {
  it('one verdict per worker: down, a label, no room, or eligible', () => {
    const t = task('t', { cpus: 2, constraints: [c('zone==a')] });
    const verdicts = explainPlacement(t, [
      { ...worker('w1', { labels: { zone: 'a' }, free: { cpus: 1.5, memoryMb: 100 } }), state: 'ready' },
      { ...worker('w2', { labels: { zone: 'b' } }), state: 'ready' },
      { ...worker('w3', { labels: { zone: 'a' } }), state: 'down' },
      { ...worker('w4'), state: 'ready' },
      { ...worker('w5', { labels: { zone: 'a' }, free: { cpus: 4, memoryMb: 100 } }), state: 'ready' },
    ]);
    expect(verdicts).toEqual([
      { workerId: 'w1', eligible: false, reason: 'no room: cpus 2 > 1.5 free' },
      { workerId: 'w2', eligible: false, reason: 'label zone!=a (it is b)' },
      { workerId: 'w3', eligible: false, reason: 'down' },
      { workerId: 'w4', eligible: false, reason: 'label zone!=a (unset)' },
      { workerId: 'w5', eligible: true, reason: 'eligible' },
    ]);
    expect(explainPlacement(task('m', { memoryMb: 512 }), [{ ...worker('w', { free: { cpus: 1, memoryMb: 256 } }), state: 'ready' }])[0]!.reason).toBe('no room: memoryMb 512 > 256 free');
  });
});

describe('preemption', () => {
  it('stops the fewest low-priority tasks that make room, on a worker the task may use', () => {
    const workers = [
      worker('w1', { free: { cpus: 0, memoryMb: 1000 } }),
      worker('w2', { free: { cpus: 0.5, memoryMb: 1000 } }),
      worker('w3', { free: { cpus: 0, memoryMb: 1000 }, labels: { zone: 'x' } }),
    ];
    const low: Record<string, { id: string; cpus: number; memoryMb: number }[]> = {
      w1: [{ id: 'a', cpus: 0.5, memoryMb: 0 }, { id: 'b', cpus: 0.5, memoryMb: 0 }, { id: 'c', cpus: 0.5, memoryMb: 0 }, { id: 'd', cpus: 0.5, memoryMb: 0 }],
      w2: [{ id: 'e', cpus: 0.5, memoryMb: 0 }, { id: 'f', cpus: 1, memoryMb: 0 }],
      w3: [{ id: 'g', cpus: 4, memoryMb: 0 }],
    };
    // 2 cpus: w1 needs four stops, w2 one (f, the largest, with 0.5 free), w3 is not allowed by the constraint.
    const plan = planPreemption(task('h', { cpus: 2, constraints: [c('zone!=x')] }), workers, (w) => low[w] ?? []);
    expect(plan).toEqual({ workerId: 'w2', victims: ['f', 'e'] });
    expect(planPreemption(task('h', { cpus: 1.5 }), workers, (w) => low[w] ?? [])).toEqual({ workerId: 'w2', victims: ['f'] });
    expect(planPreemption(task('h', { cpus: 100 }), workers, (w) => low[w] ?? [])).toBeNull();
    expect(planPreemption(task('h', { cpus: 1 }), [worker('w9')], () => [])).toBeNull();
  });
});

describe('queue order', () => {
  it('priority first, then age (id order)', () => {
    expect(queueOrder([
      { id: 't1', priority: 'normal' }, { id: 't2', priority: 'low' }, { id: 't3', priority: 'high' }, { id: 't0', priority: 'normal' }, { id: 't4', priority: 'high' },
    ])).toEqual(['t3', 't4', 't0', 't1', 't2']);
  });
});

describe('spreading a service', () => {
  it('counts, per worker, the replicas placed and meant to run of the services the pending tasks belong to', () => {
    const sm = new KvStateMachine();
    let index = 0;
    const run = (cmd: Command): void => {
      const r = sm.apply(++index, encodeCommand({ clientId: 'test', seq: index, cmd }));
      if (!r.ok) throw new Error(`${cmd.op}: ${r.message}`);
    };
    for (const w of ['w1', 'w2']) run({ op: 'worker.register', workerId: w, apiAddress: '127.0.0.1:1', runtime: 'memory', atMs: 1 });
    const update = { parallelism: 1, delayS: 0, monitorS: 1, failureAction: 'rollback' as const, order: 'stop-first' as const };
    run({ op: 'service.create', name: 'web', atMs: 1, replicas: 4, spec: { image: 'img' }, update });
    run({ op: 'service.reconcile', name: 'web', atMs: 2, ifRevision: sm.services.service('web')!.revision, create: ['t1', 't2', 't3', 't4'], stop: [] });
    run({ op: 'task.place', term: 1, atMs: 3, cursor: 'w2', placements: [{ taskId: 't1', attempt: 1, workerId: 'w1' }, { taskId: 't2', attempt: 1, workerId: 'w1' }, { taskId: 't3', attempt: 1, workerId: 'w2' }] });
    // t2 is being stopped (on its way out), t4 still pending: neither counts.
    run({ op: 'service.reconcile', name: 'web', atMs: 4, ifRevision: sm.services.service('web')!.revision, create: [], stop: ['t2'] });
    const pending = placementTask(sm.tasks.task('t4')!);
    expect(pending.spreadGroup).toBe('web');
    const spread = new Map<string, Map<string, number>>();
    addSpreadCounts(sm.tasks, [pending, task('other')], spread);
    expect(spread).toEqual(new Map([['web', new Map([['w1', 1], ['w2', 1]])]]));
  });
});

describe('a retry, as placement sees it', () => {
  const record = (attempt: number, ran: readonly (string | null)[]): TaskRecord => ({
    id: 't', attempt, spec: { image: 'img' }, service: { name: 'web' },
    history: ran.flatMap((workerId, i) => [
      { state: 'pending' as const, attempt: i + 1, atMs: i, workerId: null },
      ...(workerId === null ? [] : [{ state: 'scheduled' as const, attempt: i + 1, atMs: i, workerId }, { state: 'failed' as const, attempt: i + 1, atMs: i, workerId }]),
    ]).concat([{ state: 'pending', attempt, atMs: 9, workerId: null }]),
  }) as unknown as TaskRecord;

  it('avoids the worker of the previous attempt, firmly when the attempt before it ran there too', () => {
    expect(placementTask(record(1, []))).toMatchObject({ avoidWorkerId: null });
    expect(placementTask(record(2, ['w1']))).toMatchObject({ avoidWorkerId: 'w1' });
    expect(placementTask(record(2, ['w1'])).avoidFirmly).toBeUndefined();
    expect(placementTask(record(3, ['w2', 'w1'])).avoidFirmly).toBeUndefined();
    expect(placementTask(record(3, ['w1', 'w1']))).toMatchObject({ avoidWorkerId: 'w1', avoidFirmly: true });
    // An attempt that never got a worker (lost before it was placed): the last worker it had is avoided.
    expect(placementTask(record(3, ['w1', null]))).toMatchObject({ avoidWorkerId: 'w1' });
    expect(placementTask(record(3, ['w1', null])).avoidFirmly).toBeUndefined();
  });
});
