// Feeds task and worker commands to a state machine with consecutive log indexes, one client, and defaults that
// tests override only where they matter (test/kv's task tests share it).
import { encodeCommand, type Command, type TaskCommand, type TaskReport } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import type { TaskRecord, TaskSpec } from '../../src/contracts/task-model.js';

export class TaskDriver {
  index = 0;
  seq = 0;
  constructor(readonly sm = new KvStateMachine()) {}
  run(cmd: Command): ApplyResult {
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'c', seq: ++this.seq, cmd }));
  }
  get store() {
    return this.sm.tasks;
  }
  task(id: string): TaskRecord {
    const t = this.store.task(id);
    if (t === undefined) throw new Error(`no task ${id}`);
    return t;
  }
  submit(id: string, spec: Partial<TaskSpec> = {}, idempotencyKey?: string): ApplyResult {
    const cmd: TaskCommand = { op: 'task.submit', taskId: id, spec: { image: 'img', ...spec }, atMs: 1000, ...(idempotencyKey ? { idempotencyKey } : {}) };
    return this.run(cmd);
  }
  register(workerId: string, atMs = 1000): ApplyResult {
    return this.run({ op: 'worker.register', workerId, apiAddress: `127.0.0.1:${9000 + workerId.length}`, runtime: 'memory', atMs });
  }
  place(id: string, workerId: string, attempt = 1, term = 2, atMs = 2000): ApplyResult {
    return this.run({ op: 'task.place', term, atMs, cursor: workerId, placements: [{ taskId: id, attempt, workerId }] });
  }
  report(r: Partial<TaskReport> & { taskId: string; state: TaskReport['state'] }, atMs = 3000): ApplyResult {
    const t = this.store.task(r.taskId);
    const full: TaskReport = {
      workerId: t?.workerId ?? 'w1', attempt: t?.attempt ?? 1, term: t?.term ?? 2, containerId: 'c1', exitCode: null, error: null, retryAtMs: atMs + 100, ...r,
    };
    return this.run({ op: 'task.report', atMs, reports: [full] });
  }
}
