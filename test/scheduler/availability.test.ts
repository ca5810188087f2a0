// Placement and `task why` by worker availability: the leader places nothing on a drained or paused worker, and a
// pending task's verdicts say why (draining, paused) before anything else about that worker.
import { describe, expect, it } from 'vitest';
import { explainPlacement } from '../../src/scheduler/explain.js';
import { roundRobin } from '../../src/scheduler/round-robin.js';
import { placementTask, readyWorkers, verdictsFor } from '../../src/manager/placement-input.js';
import { TaskDriver } from '../kv/task-driver.js';

describe('placement by availability', () => {
  it('explainPlacement: a drained or paused worker is not eligible, whatever else it offers; down says down', () => {
    const task = { id: 't1', attempt: 1, avoidWorkerId: null, cpus: 8 };
    const base = { activeTasks: 0, cpuUtilization: null, free: { cpus: 1, memoryMb: 100 } };
    const verdicts = explainPlacement(task, [
      { ...base, id: 'w1', state: 'ready', availability: 'drain' },
      { ...base, id: 'w2', state: 'ready', availability: 'pause' },
      { ...base, id: 'w3', state: 'down', availability: 'drain' },
      { ...base, id: 'w4', state: 'ready', availability: 'active', free: { cpus: 8, memoryMb: 100 } },
      { ...base, id: 'w5', state: 'ready', free: { cpus: 8, memoryMb: 100 } },
    ]);
    expect(verdicts).toEqual([
      { workerId: 'w1', eligible: false, reason: 'draining' },
      { workerId: 'w2', eligible: false, reason: 'paused' },
      { workerId: 'w3', eligible: false, reason: 'down' },
      { workerId: 'w4', eligible: true, reason: 'eligible' },
      { workerId: 'w5', eligible: true, reason: 'eligible' },
    ]);
  });

  it('the leader feeds the policy active ready workers only; task why reads the same; activate makes one eligible again', () => {
    const d = new TaskDriver();
    for (const w of ['w1', 'w2', 'w3']) d.register(w);
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 1500 });
    d.run({ op: 'worker.availability', workerId: 'w2', availability: 'pause', atMs: 1500 });
    d.submit('t1');
    d.submit('t2');
    expect(readyWorkers(d.store).map((w) => w.id)).toEqual(['w3']);
    const tasks = ['t1', 't2'].map((id) => placementTask(d.task(id)));
    const decision = roundRobin.place({ tasks, workers: readyWorkers(d.store), cursor: null });
    expect(decision.placements.map((p) => p.workerId)).toEqual(['w3', 'w3']);
    expect(verdictsFor(d.store, d.task('t1')).map((v) => `${v.workerId}: ${v.reason}`)).toEqual(['w1: draining', 'w2: paused', 'w3: eligible']);
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'active', atMs: 1600 });
    expect(readyWorkers(d.store).map((w) => w.id)).toEqual(['w1', 'w3']);
    expect(verdictsFor(d.store, d.task('t1'))[0]).toEqual({ workerId: 'w1', eligible: true, reason: 'eligible' });
  });
});
