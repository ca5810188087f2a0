// The fault test's final questions, asked after the heal: has every acknowledged task settled (final or running),
// and do all managers reach one applied index with one state (keys and task records, read locally on each)?
import type { ChaosCluster } from './cluster.js';
import type { TaskSubmission } from './history.js';
import { views } from './probe.js';
import { sleep } from './workload.js';

export interface TaskView {
  readonly marker: string;
  readonly taskId: string;
  state: string;
  attempt: number;
  history: unknown;
}

const settledStates = new Set(['succeeded', 'failed', 'stopped', 'running']);

/** Every acknowledged submission's task exists and reaches a final state or runs, within timeoutMs. */
export async function checkTasks(
  cluster: ChaosCluster,
  submissions: readonly TaskSubmission[],
  timeoutMs: number,
  log: (line: string) => void,
): Promise<{ failures: string[]; views: TaskView[] }> {
  const failures: string[] = [];
  const all: TaskView[] = submissions.flatMap((s) => (s.status === 'ok' && s.taskId !== null ? [{ marker: s.marker, taskId: s.taskId, state: '?', attempt: 0, history: null }] : []));
  let waiting = [...all];
  const deadline = performance.now() + timeoutMs;
  const ids = cluster.managerIds;
  let turn = 0;
  while (waiting.length > 0 && performance.now() < deadline) {
    const still: TaskView[] = [];
    for (let i = 0; i < waiting.length; i += 8) {
      const batch = waiting.slice(i, i + 8);
      const answers = await Promise.all(batch.map((v) => cluster.send(ids[turn++ % ids.length]!, 'GET', `/v1/tasks/${v.taskId}`, { timeoutMs: 3000 })));
      batch.forEach((v, k) => {
        const o = answers[k]!;
        if (o.kind === 'answer' && o.status === 404 && o.body.error?.code === 'TASK_NOT_FOUND') {
          failures.push(`acknowledged task ${v.taskId} (${v.marker}) does not exist: a linearizable GET answered 404`);
          return;
        }
        if (o.kind === 'answer' && o.status === 200) {
          v.state = String(o.body.state);
          v.attempt = Number(o.body.attempt);
          v.history = o.body.history;
          if (settledStates.has(v.state)) return;
        }
        still.push(v);
      });
    }
    waiting = still;
    if (waiting.length > 0) await sleep(500);
  }
  for (const v of waiting) failures.push(`acknowledged task ${v.taskId} (${v.marker}) is still ${v.state} ${(timeoutMs / 1000).toFixed(0)} s after the heal; history ${JSON.stringify(v.history)}`);
  const states = new Map<string, number>();
  for (const v of all) states.set(v.state, (states.get(v.state) ?? 0) + 1);
  log(`chaos: ${all.length} acknowledged tasks: ${[...states].map(([s, n]) => `${n} ${s}`).join(', ')}`);
  return { failures, views: all };
}

/**
 * Waits until every manager reports the same applied index (equal to its commit index) twice around reading its
 * local state, then compares those states: at one applied index every manager must hold the same keys and tasks.
 */
export async function convergence(cluster: ChaosCluster, keys: readonly string[], timeoutMs: number): Promise<{ failure: string | null; index: number }> {
  const deadline = performance.now() + timeoutMs;
  let last = 'no manager answered';
  while (performance.now() < deadline) {
    const before = await views(cluster, 2000);
    const index = before[0]?.appliedIndex ?? -1;
    if (before.some((v) => v === null || v.appliedIndex !== index || v.commitIndex !== index)) {
      last = before.map((v, i) => `${cluster.managerIds[i]}: ${v === null ? 'no answer' : `commit ${v.commitIndex} applied ${v.appliedIndex}`}`).join(', ');
      await sleep(300);
      continue;
    }
    const states = await Promise.all(cluster.managerIds.map((id) => localState(cluster, id, keys)));
    const after = await views(cluster, 2000);
    if (after.some((v) => v === null || v.appliedIndex !== index) || states.some((s) => s === null)) continue;
    const reference = states[0]!;
    const differing = cluster.managerIds.filter((_, i) => states[i] !== reference);
    if (differing.length === 0) return { failure: null, index };
    const shown = cluster.managerIds.map((id, i) => `  ${id}: ${states[i]!.slice(0, 2000)}`).join('\n');
    return { failure: `managers disagree at applied index ${index}: ${differing.join(', ')} differ from ${cluster.managerIds[0]}\n${shown}`, index };
  }
  return { failure: `the managers did not converge on one applied index within ${(timeoutMs / 1000).toFixed(0)} s (last: ${last})`, index: -1 };
}

/** One manager's own state as text: every key (stale read) and every task record, or null if it did not answer. */
async function localState(cluster: ChaosCluster, id: string, keys: readonly string[]): Promise<string | null> {
  const parts: unknown[] = [];
  for (const key of keys) {
    const o = await cluster.send(id, 'GET', `/v1/kv/${key}?consistency=stale`, { timeoutMs: 2000 });
    if (o.kind !== 'answer' || (o.status !== 200 && o.status !== 404)) return null;
    parts.push(o.status === 200 ? [key, o.body.value, o.body.version] : [key, null]);
  }
  let cursor: string | null = null;
  do {
    const query: string = `/v1/tasks?consistency=stale&limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const o = await cluster.send(id, 'GET', query, { timeoutMs: 5000 });
    if (o.kind !== 'answer' || o.status !== 200 || !Array.isArray(o.body.items)) return null;
    parts.push(...(o.body.items as unknown[]));
    cursor = typeof o.body.nextCursor === 'string' ? o.body.nextCursor : null;
  } while (cursor !== null);
  return JSON.stringify(parts);
}
