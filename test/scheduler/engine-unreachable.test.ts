// A worker whose engine does not answer (it says so, worker.engine): the leader places nothing new on it, `task why`
// names it, GET /v1/workers shows it, a snapshot keeps it, and it clears when the worker says the engine answers.
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { placementTask, readyWorkers, verdictsFor } from '../../src/manager/placement-input.js';
import { roundRobin } from '../../src/scheduler/round-robin.js';
import { TaskDriver } from '../kv/task-driver.js';

const sinceMs = Date.parse('2026-12-07T20:00:00.000Z');
const reason = 'docker image inspect: connect ECONNREFUSED /tmp/bb72/docker.sock';

describe('a worker whose engine is unreachable', () => {
  it('takes no new task, task why names it, its record shows it, and it clears when the engine answers again', () => {
    const d = new TaskDriver();
    for (const w of ['w1', 'w2']) d.register(w);
    expect(d.run({ op: 'worker.engine', workerId: 'w2', atMs: 1500, unreachable: { reason, sinceMs } }).ok).toBe(true);
    d.submit('t1');
    d.submit('t2');
    expect(readyWorkers(d.store).map((w) => w.id)).toEqual(['w1']);
    const tasks = ['t1', 't2'].map((id) => placementTask(d.task(id)));
    expect(roundRobin.place({ tasks, workers: readyWorkers(d.store), cursor: null }).placements.map((p) => p.workerId)).toEqual(['w1', 'w1']);
    expect(verdictsFor(d.store, d.task('t1')).map((v) => `${v.workerId}: ${v.reason}`)).toEqual([
      'w1: eligible',
      `w2: engine unreachable: ${reason} since 2026-12-07T20:00:00.000Z`,
    ]);
    expect(d.store.worker('w2')).toMatchObject({ state: 'ready', availability: 'active', engineUnreachable: { reason, since: '2026-12-07T20:00:00.000Z' } });
    expect(d.store.worker('w1')).not.toHaveProperty('engineUnreachable');

    d.run({ op: 'worker.engine', workerId: 'w2', atMs: 1600, unreachable: null });
    expect(readyWorkers(d.store).map((w) => w.id)).toEqual(['w1', 'w2']);
    expect(d.store.worker('w2')).not.toHaveProperty('engineUnreachable');
  });

  it('a snapshot keeps it (a 13th worker field, only then), and a registration clears it', () => {
    const d = new TaskDriver();
    d.register('w1');
    d.register('w2');
    d.run({ op: 'worker.engine', workerId: 'w2', atMs: 1500, unreachable: { reason, sinceMs } });
    const restored = new KvStateMachine();
    restored.restore(d.sm.snapshot());
    expect(restored.tasks.worker('w2')?.engineUnreachable).toEqual({ reason, since: '2026-12-07T20:00:00.000Z' });
    expect(restored.tasks.worker('w1')).not.toHaveProperty('engineUnreachable');
    expect(readyWorkers(restored.tasks).map((w) => w.id)).toEqual(['w1']);
    d.register('w2', 2000);
    expect(d.store.worker('w2')).not.toHaveProperty('engineUnreachable');
  });

  it('is a command of version 12, fenced by instance like a heartbeat', () => {
    const cmd = { op: 'worker.engine', workerId: 'w1', atMs: 1, unreachable: { reason, sinceMs } } as const;
    const bytes = encodeCommand({ clientId: 'c', seq: 1, cmd });
    expect(decodeCommand(bytes).cmd).toEqual(cmd);
    const d = new TaskDriver();
    d.run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'memory', atMs: 1, instance: 'aaaa' });
    const r = d.run({ ...cmd, instance: 'bbbb' });
    expect(r.ok).toBe(false);
    expect(d.store.worker('w1')).not.toHaveProperty('engineUnreachable');
  });
});
