// `minkube task run --count N` for N > 1: N copies of one spec through POST /v1/tasks/batch, and with --wait one
// progress line until every copy has left pending/scheduled, then how many run, succeeded, failed or were stopped.
import type { SubmittedTask } from '../client/api-client.js';
import type { TaskRecord, TaskSpec, TaskState } from '../contracts/task-model.js';
import { printJson, printLine, writeOut, type Output } from './output.js';
import { TaskApi } from './task-api.js';
import { CliExit, pollFailureTolerated } from './tasks.js';

export interface RunManyOptions {
  spec: TaskSpec;
  count: number;
  wait: boolean;
  pollMs?: number;
}

/** What the wait saw last of a task; 'gone' when the cluster no longer keeps it (forgotten to make room). */
type Seen = TaskState | 'gone';

const waitingStates: ReadonlySet<Seen> = new Set<Seen>(['pending', 'scheduled', 'lost']);
const summaryStates = ['running', 'succeeded', 'failed', 'stopped'] as const;
const failuresShownMax = 5;

/** The ids are printed as each batch is created, so a failure part way leaves the created ones on stdout. */
export async function runTaskRunMany(apiUrl: string, o: RunManyOptions, out: Output): Promise<void> {
  const api = new TaskApi(apiUrl);
  const created: SubmittedTask[] = [];
  try {
    await api.submitMany(copies(o.spec, o.count), (items) => {
      created.push(...items);
      if (!out.json) printLine(items.map((t) => t.id).join('\n'));
    });
  } catch (err) {
    if (out.json && created.length > 0) printJson(created);
    throw err;
  }
  if (!o.wait) {
    if (out.json) printJson(created);
    return;
  }
  const seen = new Map<string, Seen>(created.map((t) => [t.id, t.state]));
  const failures: TaskRecord[] = [];
  await waitUntilStarted(api, seen, failures, o.pollMs ?? 250, out);
  if (out.json) printJson(created.map((t) => ({ id: t.id, state: seen.get(t.id) })));
  else printLine(countsLine(seen, false));
  const failed = [...seen.values()].filter((s) => s === 'failed').length;
  if (failed === 0) return;
  for (const t of failures) process.stderr.write(`error: task ${t.id} failed: ${t.error === null ? 'no reason was recorded' : `${t.error.class}: ${t.error.message}`}\n`);
  process.stderr.write(`error: ${failed} of ${seen.size} tasks failed\n`);
  throw new CliExit(1);
}

/** With a name, copy i (from 1) is named `${name}-${i}`: names label tasks for people, and copies should differ. */
export function copies(spec: TaskSpec, count: number): TaskSpec[] {
  const specs: TaskSpec[] = [];
  for (let i = 1; i <= count; i++) specs.push(spec.name === undefined ? spec : { ...spec, name: `${spec.name}-${i}` });
  return specs;
}

async function waitUntilStarted(api: TaskApi, seen: Map<string, Seen>, failures: TaskRecord[], pollMs: number, out: Output): Promise<void> {
  const tty = !out.json && process.stdout.isTTY;
  let shown = '';
  for (let pollFailures = 0; ; ) {
    const line = countsLine(seen, true);
    if (!out.json && line !== shown) writeOut(tty ? `\r${line}\x1b[K` : `${line}\n`);
    shown = line;
    if (![...seen.values()].some((s) => waitingStates.has(s))) break;
    await new Promise((r) => setTimeout(r, pollMs));
    try {
      await pollWaiting(api, seen, failures);
      pollFailures = 0;
    } catch (err) {
      if (!pollFailureTolerated(err, ++pollFailures)) throw err;
    }
  }
  if (tty) writeOut('\n');
}

/**
 * One pass over the task list from the lowest id still waiting to the highest (ids sort in creation order, so the
 * pass skips what started already); a waiting task the pass does not meet was forgotten by the cluster.
 */
async function pollWaiting(api: TaskApi, seen: Map<string, Seen>, failures: TaskRecord[]): Promise<void> {
  const waiting = [...seen].filter(([, s]) => waitingStates.has(s)).map(([id]) => id).sort();
  const first = waiting[0];
  const last = waiting.at(-1);
  if (first === undefined || last === undefined) return;
  const met = new Set<string>();
  // A proper prefix of the first id sorts just before it, and the list answers the ids after its cursor.
  let cursor: string | null = first.slice(0, -1);
  while (cursor !== null) {
    const page = await api.list({ limit: 1000, cursor });
    for (const t of page.items) {
      const before = seen.get(t.id);
      if (before === undefined) continue;
      met.add(t.id);
      if (t.state === 'failed' && before !== 'failed' && failures.length < failuresShownMax) failures.push(t);
      seen.set(t.id, t.state);
    }
    const pageLast = page.items.at(-1)?.id;
    cursor = pageLast === undefined || pageLast >= last ? null : page.nextCursor;
  }
  for (const id of waiting) if (!met.has(id)) seen.set(id, 'gone');
}

function countsLine(seen: ReadonlyMap<string, Seen>, progress: boolean): string {
  const counts = new Map<Seen, number>();
  for (const s of seen.values()) counts.set(s, (counts.get(s) ?? 0) + 1);
  const waiting = [...waitingStates].reduce((n, s) => n + (counts.get(s) ?? 0), 0);
  const parts = summaryStates.map((s) => `${counts.get(s) ?? 0} ${s}`);
  if (progress) parts.unshift(`${waiting} waiting`);
  const gone = counts.get('gone') ?? 0;
  if (gone > 0) parts.push(`${gone} forgotten by the cluster`);
  return `${seen.size} tasks: ${parts.join(', ')}`;
}
