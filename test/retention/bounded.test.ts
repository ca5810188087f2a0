// 40,000 tasks submitted, placed, run and finished through one state machine (the commands every manager applies),
// with retention's selection proposed as task.remove between rounds as the leader's loop does: the records kept and
// the snapshot's size level off at tasks.retention.finishedMax, while without retention they grow with the tasks.
// (200,000 tasks, and each manager's RSS, with real processes: bench/retention.ts.)
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { selectForRemoval } from '../../src/kv/retention.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { limits } from '../../src/lib/limits.js';

const TASKS = 40_000;
const ROUND = 4000;
const FINISHED_MAX = 4000;

/** Submits and finishes TASKS tasks in rounds; after each round, retention (if on) runs until nothing is due. */
function run(retention: { finishedMax: number; finishedAgeS: number } | null): { records: number[]; snapshotBytes: number[] } {
  const sm = new KvStateMachine();
  let index = 0;
  let seq = 0;
  const apply = (cmd: Command): void => {
    const r = sm.apply(++index, encodeCommand({ clientId: 'c', seq: ++seq, ackSeq: seq, cmd }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
  };
  apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory', atMs: 1 });
  const records: number[] = [];
  const snapshotBytes: number[] = [];
  for (let base = 0; base < TASKS; base += ROUND) {
    const id = (i: number): string => `t${String(base + i).padStart(12, '0')}`;
    const atMs = 1000 + base;
    for (let b = 0; b < ROUND; b += 1000) {
      apply({ op: 'task.submitBatch', atMs, tasks: Array.from({ length: 1000 }, (_, i) => ({ taskId: id(b + i), spec: { image: 'bench', command: ['true'] } })) });
      apply({ op: 'task.place', term: 1, atMs, cursor: 'w1', placements: Array.from({ length: 1000 }, (_, i) => ({ taskId: id(b + i), attempt: 1, workerId: 'w1' })) });
      for (const state of ['running', 'succeeded'] as const) {
        const reports = Array.from({ length: 1000 }, (_, i) => ({
          taskId: id(b + i), workerId: 'w1', attempt: 1, term: 1, state, containerId: 'c', exitCode: state === 'succeeded' ? 0 : null, error: null, retryAtMs: 0,
        }));
        apply({ op: 'task.report', atMs, reports });
      }
    }
    if (retention !== null) {
      for (;;) {
        const ids = selectForRemoval(sm.tasks, retention, atMs, limits.retentionBatchMax);
        if (ids.length === 0) break;
        apply({ op: 'task.remove', atMs, taskIds: ids });
      }
    }
    records.push(sm.tasks.taskCount);
    if (base / ROUND === 2 || base + ROUND >= TASKS) snapshotBytes.push(sm.snapshot().length);
  }
  return { records, snapshotBytes };
}

describe('retention keeps history bounded', () => {
  it('40,000 finished tasks: the records and the snapshot level off at finishedMax with retention, and grow without', () => {
    const on = run({ finishedMax: FINISHED_MAX, finishedAgeS: 86_400 });
    expect(Math.max(...on.records)).toBe(FINISHED_MAX);
    expect(on.records.at(-1)).toBe(FINISHED_MAX);
    // The snapshot at 12,000 tasks and at 40,000 are the same size within a few per cent (ids and times differ).
    const [first, ...later] = on.snapshotBytes;
    for (const bytes of later) expect(Math.abs(bytes - first!) / first!).toBeLessThan(0.05);

    const off = run(null);
    expect(off.records.at(-1)).toBe(TASKS);
    expect(off.snapshotBytes.at(-1)! / on.snapshotBytes.at(-1)!).toBeGreaterThan(TASKS / FINISHED_MAX / 2);
  }, 600_000);
});
