// The task store's cost per task, in one process with no I/O: N tasks submitted in batches of 100, placed in
// batches of 1,000, reported running and then succeeded in batches of 256, applied through the state machine
// (decoding included), four times over. `npx tsx bench/task-store.ts [N]` (default 20000)
import { KvStateMachine } from '../src/kv/state-machine.js';
import { encodeCommand, type Command } from '../src/kv/commands.js';
const N = Number(process.argv[2] ?? 20000);
function run(): number {
  const sm = new KvStateMachine();
  let index = 0, seq = 0;
  const apply = (cmd: Command) => sm.apply(++index, encodeCommand({ clientId: 'c', seq: ++seq, cmd }));
  apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory', atMs: 1 });
  apply({ op: 'worker.register', workerId: 'w2', apiAddress: '127.0.0.1:2', runtime: 'memory', atMs: 1 });
  const t0 = performance.now();
  for (let b = 0; b < N; b += 100) {
    const tasks = Array.from({ length: 100 }, (_, i) => ({ taskId: `t${String(b + i).padStart(17, '0')}`, spec: { image: 'bench', command: ['true'] } }));
    apply({ op: 'task.submitBatch', atMs: 1000 + b, tasks });
  }
  for (let b = 0; b < N; b += 1000) {
    const placements = Array.from({ length: Math.min(1000, N - b) }, (_, i) => ({ taskId: `t${String(b + i).padStart(17, '0')}`, attempt: 1, workerId: i % 2 ? 'w1' : 'w2' }));
    apply({ op: 'task.place', term: 1, atMs: 5000, cursor: 'w1', placements });
  }
  for (const state of ['running', 'succeeded'] as const) {
    for (let b = 0; b < N; b += 256) {
      const reports = Array.from({ length: Math.min(256, N - b) }, (_, i) => ({ taskId: `t${String(b + i).padStart(17, '0')}`, workerId: (b + i) % 2 ? 'w1' : 'w2', attempt: 1, term: 1, state, containerId: 'c', exitCode: state === 'succeeded' ? 0 : null, error: null, retryAtMs: 0 }));
      apply({ op: 'task.report', atMs: 6000, reports });
    }
  }
  return performance.now() - t0;
}
for (let i = 0; i < 4; i++) console.log(`${N} tasks through 4 transitions: ${run().toFixed(0)} ms`);
