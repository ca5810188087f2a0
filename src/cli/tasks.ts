// `minkube task run|ls|get|stop|logs` and `minkube worker ls`: tables and detail views over the task routes; --json
// prints the answers as they came. `task run --wait` follows the task to its end and exits non-zero if it failed.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { noWorkerReason } from '../contracts/placement.js';
import { envNameRule, isEnvName, type TaskRecord, type TaskSpec, type TaskTransition, type WorkerAvailability, type WorkerRecord } from '../contracts/task-model.js';
import { MinkubeError } from '../lib/errors.js';
import { commandText, formatTable, printJson, printLine, writeOut, writeOutDrained, type Output } from './output.js';
import { TaskApi } from './task-api.js';

/** Thrown to end the CLI with an exit code after the reason has been printed. */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export interface RunOptions {
  spec: TaskSpec;
  wait: boolean;
  /** Print its output as it runs, then exit with its exit code. */
  follow?: boolean;
  pollMs?: number;
}

const finalStates = new Set(['succeeded', 'failed', 'stopped']);

/** While following tasks, a slow or changing cluster (a 5xx) is no reason to stop; ten failures in a row are. */
export function pollFailureTolerated(err: unknown, failuresInARow: number): boolean {
  return err instanceof MinkubeError && err.status >= 500 && failuresInARow < 10;
}

export async function runTaskRun(apiUrl: string, o: RunOptions, out: Output): Promise<void> {
  const api = new TaskApi(apiUrl);
  const submitted = await api.submit(o.spec);
  if (o.follow === true) return followRun(api, submitted.id, o.pollMs ?? 100);
  if (!o.wait) {
    if (out.json) printJson(submitted);
    else printLine(submitted.id);
    return;
  }
  if (!out.json) printLine(`task ${submitted.id} submitted`);
  const printed = new Set<string>();
  const waiting = { why: null as string | null, askedAtMs: -Infinity };
  let t: TaskRecord;
  for (let failures = 0; ; ) {
    try {
      t = await api.get(submitted.id);
      failures = 0;
    } catch (err) {
      if (!pollFailureTolerated(err, ++failures)) throw err;
      await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
      continue;
    }
    printNewHistory(t, printed, out);
    if (finalStates.has(t.state)) break;
    if (!out.json) await printWhyPending(api, t, waiting);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
  }
  if (out.json) printJson(t);
  else printLine(`task ${t.id} ${t.state}${t.exitCode === null ? '' : `; exit code ${t.exitCode}`}`);
  if (t.state === 'succeeded') return;
  throw endedBadly(t, 1);
}

/** How often `task run --wait` asks why a pending task is not placed (GET /v1/tasks/:id/placement). */
const whyPendingPollMs = 1000;

/**
 * For a task waiting to be placed that no worker can take now, a progress line saying why, as `task why` does (`w1:
 * label zone!=a (it is b)`), once per reason: the history says only `submitted`, or how the last attempt ended. Best
 * effort: a failed question is no reason to stop following the task.
 */
async function printWhyPending(api: TaskApi, t: TaskRecord, waiting: { why: string | null; askedAtMs: number }): Promise<void> {
  if (t.state !== 'pending' || t.desiredState !== 'run') {
    waiting.why = null;
    return;
  }
  if (performance.now() - waiting.askedAtMs < whyPendingPollMs) return;
  waiting.askedAtMs = performance.now();
  const view = await api.placement(t.id).catch(() => null);
  if (view === null || view.state !== 'pending') return;
  const why = noWorkerReason(view.workers);
  if (why !== null && why !== waiting.why) printLine(`${clock(Date.now())}  ${'pending'.padEnd(9)}  attempt ${t.attempt}: no worker can take it now (${why}; see task why ${t.id})`);
  waiting.why = why;
}

/** Says on stderr how a task that did not succeed ended; the exit to end with. */
function endedBadly(t: TaskRecord, exitCode: number): CliExit {
  // A stopped task needs no reason beside its state (`stopped: it was stopped` said it twice).
  if (t.state === 'stopped') process.stderr.write(`error: task ${t.id} was stopped\n`);
  else process.stderr.write(`error: task ${t.id} ${t.state}: ${t.error === null ? 'no reason was recorded' : `${t.error.class}: ${t.error.message}`}\n`);
  return new CliExit(exitCode);
}

/**
 * `task run --follow`: the output of each attempt as it runs (stdout holds nothing else), then the exit code of the
 * task's last attempt (0 when it succeeded; a failed or stopped one's non-zero code, 137 when it was killed, as
 * `docker run` does; else 1: no exit code, as when it never started). A stream cut part-way (its worker died) is said
 * on stderr, and the task followed on: its next attempt, or its end.
 */
async function followRun(api: TaskApi, id: string, pollMs: number): Promise<void> {
  process.stderr.write(`task ${id} submitted\n`);
  let followed = 0;
  let t: TaskRecord;
  for (let failures = 0; ; ) {
    try {
      t = await api.get(id);
      failures = 0;
    } catch (err) {
      if (followed > 0 && err instanceof MinkubeError && err.code === 'TASK_NOT_FOUND') {
        // Retention removed the record of the task as soon as it ended (tasks.retention.finishedMax 0, say).
        throw new MinkubeError('TASK_NOT_FOUND', `task ${id} ended and tasks.retention removed its record before its outcome could be read: its exit code is unknown`);
      }
      if (!pollFailureTolerated(err, ++failures)) throw err;
      await new Promise((r) => setTimeout(r, pollMs));
      continue;
    }
    // The first at once (the manager waits for the task to run); later attempts once they run. An attempt that
    // starts and ends between two looks is not shown: the worker keeps only the latest attempt's output.
    if (followed === 0 || (t.attempt > followed && (t.state === 'running' || finalStates.has(t.state)))) {
      if (followed > 0) {
        sayAttemptsEnded(t, followed);
        process.stderr.write(`task ${id}: attempt ${t.attempt}${t.workerId === null ? '' : ` on ${t.workerId}`}\n`);
      }
      followed = Math.max(1, t.attempt);
      await followAttempt(api, id, followed);
      continue;
    }
    if (finalStates.has(t.state)) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  sayAttemptsEnded(t, followed);
  // How the last attempt ended: a success here, anything else in the error line below.
  if (t.state === 'succeeded') {
    const last = t.history.at(-1);
    process.stderr.write(`task ${id}: attempt ${t.attempt} succeeded${last?.reason === undefined ? '' : `: ${last.reason}`}\n`);
    return;
  }
  throw endedBadly(t, t.exitCode !== null && t.exitCode > 0 && t.exitCode < 256 ? t.exitCode : 1);
}

/** How each attempt from `since` on that is over ended, from the history lines of the retries that followed them. */
function sayAttemptsEnded(t: TaskRecord, since: number): void {
  for (const h of t.history) {
    if (h.state === 'pending' && h.attempt > since && h.attempt <= t.attempt && h.reason !== undefined) process.stderr.write(`task ${t.id}: attempt ${h.attempt - 1} ended: ${h.reason}\n`);
  }
}

/**
 * Everything the runtime keeps of an attempt's output (bounded in bytes), then what it writes. A stream that cannot be
 * opened or is cut part-way (the attempt's worker stopped answering) ends the attempt's output with a line on stderr;
 * the caller then waits for the task's next attempt or its end, as between attempts.
 */
async function followAttempt(api: TaskApi, id: string, attempt: number): Promise<void> {
  try {
    for await (const chunk of await api.followLogs(id, followTailLines)) await writeOutDrained(chunk);
  } catch (err) {
    if (err instanceof MinkubeError && (err.code === 'TASK_LOGS_GONE' || err.code === 'TASK_NOT_FOUND')) return; // removed as it ended: followRun says so
    if (!(err instanceof MinkubeError) || !(err.code === 'UNREACHABLE' || err.status >= 500)) throw err;
    process.stderr.write(`task ${id}: the output of attempt ${attempt} ended early (${err.message}); following the task\n`);
  }
}

/** The most lines the logs route gives: a follow from a container's start keeps all the runtime has. */
export const followTailLines = 100_000;

/** Prints the history entries not printed yet (history is bounded, so entries are known by time, state and attempt). */
function printNewHistory(t: TaskRecord, printed: Set<string>, out: Output): void {
  for (const h of t.history) {
    const key = `${h.atMs}/${h.state}/${h.attempt}`;
    if (printed.has(key)) continue;
    printed.add(key);
    if (!out.json) printLine(transitionLine(h));
  }
}

function transitionLine(h: TaskTransition): string {
  const where = h.workerId === null ? '' : ` on ${h.workerId}`;
  return `${clock(h.atMs)}  ${h.state.padEnd(9)}  attempt ${h.attempt}${where}${h.reason === undefined ? '' : `: ${h.reason}`}`;
}

export async function runTaskList(apiUrl: string, q: { state?: string; workerId?: string; name?: string; limit: number; cursor?: string }, out: Output): Promise<void> {
  const api = new TaskApi(apiUrl);
  const items: TaskRecord[] = [];
  let cursor: string | undefined = q.cursor;
  let nextCursor: string | null = null;
  // Follow pages until the limit: the server's page is at most 1000.
  do {
    const page = await api.list({ ...q, limit: Math.min(1000, q.limit - items.length), ...(cursor === undefined ? {} : { cursor }) });
    items.push(...page.items);
    nextCursor = page.nextCursor;
    cursor = nextCursor ?? undefined;
  } while (nextCursor !== null && items.length < q.limit);
  if (out.json) {
    printJson({ items, nextCursor });
    return;
  }
  const rows = [['ID', 'NAME', 'IMAGE', 'STATE', 'WORKER', 'ATTEMPT', 'EXIT', 'UPDATED']];
  for (const t of items) {
    const state = t.desiredState === 'stop' && !finalStates.has(t.state) ? `${t.state} (stopping)` : t.draining === true && !finalStates.has(t.state) ? `${t.state} (draining)` : t.state;
    rows.push([t.id, t.spec.name ?? '-', t.spec.image, state, t.workerId ?? '-', String(t.attempt), t.exitCode === null ? '-' : String(t.exitCode), t.updatedAt]);
  }
  printLine(formatTable(rows));
  // On stderr: stdout holds the table alone, for whatever reads it.
  // The next page is a flag away: the same command with --cursor (the API's nextCursor) goes on after the last row.
  if (nextCursor !== null) process.stderr.write(`more tasks follow: add --cursor ${nextCursor} for the next page (or raise --limit)\n`);
}

/** The spec's stop settings as `task get` shows them: "SIGINT, then SIGKILL after 30 s". */
function stopLine(spec: TaskSpec): string {
  const after = spec.stopTimeoutS === undefined ? "the worker's tasks.stopTimeoutMs" : `${spec.stopTimeoutS} s`;
  return `${spec.stopSignal ?? 'SIGTERM'}, then SIGKILL after ${after}`;
}

export async function runTaskGet(apiUrl: string, id: string, out: Output): Promise<void> {
  const t = await new TaskApi(apiUrl).get(id);
  if (out.json) {
    printJson(t);
    return;
  }
  const spec = t.spec;
  const lines: [string, string][] = [
    ['id', t.id],
    ['name', spec.name ?? '-'],
    ['image', spec.image],
    ['command', spec.command === undefined ? '(image default)' : commandText(spec.command)],
    // As a shell would read the pairs back (printLine escapes what a terminal would act on).
    ...(spec.env === undefined || Object.keys(spec.env).length === 0 ? [] : [['env', commandText(Object.entries(spec.env).map(([k, v]) => `${k}=${v}`))] as [string, string]]),
    // The answer holds the names only (values read "<redacted>").
    ...(spec.secretEnv === undefined ? [] : [['secret env', Object.keys(spec.secretEnv).join(', ')] as [string, string]]),
    ...(spec.stopSignal === undefined && spec.stopTimeoutS === undefined ? [] : [['stop', stopLine(spec)] as [string, string]]),
    ['state', `${t.state} (desired: ${t.desiredState}${t.draining === true ? '; stopping on its drained worker, to be placed elsewhere' : ''})`],
    ['worker', t.workerId ?? '-'],
    // Declared ports: each with the address its worker gave the current attempt, once it did.
    ...(spec.ports === undefined ? [] : [['ports', spec.ports.map((p) => `${p.name}=${t.ports?.find((a) => a.name === p.name)?.address ?? '-'}`).join(' ')] as [string, string]]),
    ...(t.health === undefined ? [] : [['health', t.health] as [string, string]]),
    // A service's replica is restarted without bound (task-rules.ts): its maxAttempts does not apply.
    ['attempt', t.service === undefined ? `${attemptText(t, spec.maxAttempts ?? 3)} (restart: ${spec.restartPolicy ?? 'never'})` : `${t.attempt} (replica of service ${t.service.name} version ${t.service.version}: restarted without bound${drainedText(t)})`],
    ['container', t.containerId ?? '-'],
    ['exit code', t.exitCode === null ? '-' : String(t.exitCode)],
    ['error', t.error === null ? '-' : `${t.error.class}: ${t.error.message}`],
    ['created', t.createdAt],
    ['updated', t.updatedAt],
  ];
  for (const [k, v] of lines) printLine(`${`${k}:`.padEnd(11)} ${v}`);
  printLine('history:');
  for (const h of t.history) printLine(`  ${transitionLine(h)}`);
}

export async function runTaskStop(apiUrl: string, id: string, out: Output): Promise<void> {
  const t = await new TaskApi(apiUrl).stop(id);
  if (out.json) printJson(t);
  else printLine(t.state === 'stopped' ? `${t.id}: stopped` : `${t.id}: stopping (${t.state} on ${t.workerId ?? '?'})`);
}

export async function runTaskLogs(apiUrl: string, id: string, tailLines: number, follow = false): Promise<void> {
  const api = new TaskApi(apiUrl);
  if (!follow) {
    const text = await api.logs(id, tailLines);
    writeOut(text);
    // Nothing, for a task that never ran: said on stderr (stdout stays the output alone), so that it reads as not yet.
    if (text === '') await sayNeverRan(api, id);
    return;
  }
  await sayWaitingToStart(api, id);
  let bytes = 0;
  try {
    for await (const chunk of await api.followLogs(id, tailLines)) {
      bytes += chunk.length;
      await writeOutDrained(chunk);
    }
  } catch (err) {
    throw await whyCut(api, id, err);
  }
  if (bytes === 0) await sayNeverRan(api, id);
}

/**
 * `task logs -f` of a task not placed or started yet: the follow waits for it to run, so say so once on stderr rather
 * than wait in silence. A task that cannot be read now is followed all the same (the follow says what is wrong).
 */
async function sayWaitingToStart(api: TaskApi, id: string): Promise<void> {
  const t = await api.get(id).catch(() => null);
  if (t === null || (t.state !== 'pending' && t.state !== 'scheduled')) return;
  process.stderr.write(`task ${id} has not started yet (${t.state}): waiting for it to start\n`);
}

/** Nothing, for a task that never ran: said on stderr (stdout stays the output alone), so that it reads as such. */
async function sayNeverRan(api: TaskApi, id: string): Promise<void> {
  const t = await api.get(id).catch(() => null);
  if (t === null || t.history.some((h) => h.state === 'running')) return;
  process.stderr.write(finalStates.has(t.state) ? `task ${id} never ran (${t.state}): no output\n` : `task ${id} has not run yet (${t.state}): no output\n`);
}

/**
 * A followed log cut part-way: the manager cuts one whose token was revoked or expired meanwhile, and says why only
 * to the next request. One quick question tells that cut (401/403, shown instead) from a manager or worker gone away.
 */
export async function whyCut(api: Pick<TaskApi, 'get'>, id: string, err: unknown): Promise<unknown> {
  if (!(err instanceof MinkubeError) || err.code !== 'UNREACHABLE') return err;
  try {
    await api.get(id);
  } catch (asked) {
    if (asked instanceof MinkubeError && (asked.code === 'UNAUTHENTICATED' || asked.code === 'FORBIDDEN')) {
      return new MinkubeError(asked.code, `the followed output was cut: ${asked.message}`, { cause: err });
    }
  }
  return err;
}

/** `worker rm ID`: forgets a retired worker's record (down, no task placed on it). */
export async function runWorkerRemove(apiUrl: string, id: string, out: Output): Promise<void> {
  const removed = await new TaskApi(apiUrl).removeWorker(id);
  if (out.json) printJson(removed);
  else printLine(`removed worker ${removed.id}`);
}

/** The attempt as maxAttempts counts it: those a drain of their worker ended are not counted (task-rules.ts). */
/** A replica's drained attempts, as its attempt line ends (a service's replicas are restarted without bound). */
function drainedText(t: TaskRecord): string {
  const drained = t.drainedAttempts ?? 0;
  return drained === 0 ? '' : `; ${drained} ended by a drain of its worker`;
}

function attemptText(t: TaskRecord, max: number): string {
  const drained = t.drainedAttempts ?? 0;
  if (drained === 0) return `${t.attempt} of ${max}`;
  return `${t.attempt} (${t.attempt - drained} of ${max} counted: ${drained} ended by a drain of its worker)`;
}

/** `worker drain|pause|activate ID`: whether the leader places tasks on the worker; a drain moves its tasks away. */
export async function runWorkerAvailability(apiUrl: string, id: string, availability: WorkerAvailability, out: Output): Promise<void> {
  const w = await new TaskApi(apiUrl).setWorkerAvailability(id, availability);
  if (out.json) {
    printJson(w);
    return;
  }
  const held = `${w.taskCount} task${w.taskCount === 1 ? '' : 's'}`;
  if (availability === 'active') printLine(`worker ${w.id} is active: tasks may be placed on it`);
  else if (availability === 'pause') printLine(`worker ${w.id} is paused: nothing new is placed on it${w.taskCount === 0 ? '' : `; the ${held} on it stay${w.taskCount === 1 ? 's' : ''}`}`);
  else if (w.taskCount === 0) printLine(`worker ${w.id} is drained: it holds no task`);
  else printLine(`worker ${w.id} is draining: its ${held} ${w.taskCount === 1 ? 'is' : 'are'} being stopped there and placed elsewhere; worker ls shows TASKS 0 once it holds none`);
}

export async function runWorkerList(apiUrl: string, out: Output): Promise<void> {
  const api = new TaskApi(apiUrl);
  const items: WorkerRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.workers({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  if (out.json) {
    printJson({ items, nextCursor: null });
    return;
  }
  // AVAILABILITY came later: before LAST HEARTBEAT, so the columns before it stay where scripts find them.
  const rows = [['ID', 'STATE', 'API', 'RUNTIME', 'TASKS', 'CPU', 'MEM FREE', 'AVAILABILITY', 'LAST HEARTBEAT']];
  const now = Date.now();
  for (const w of items) {
    const s = w.stats;
    const cpu = s?.cpuUtilization == null ? '-' : `${Math.round(s.cpuUtilization * 100)}%`;
    const mem = s === null || s.memoryTotalBytes === 0 ? '-' : `${Math.round(s.memoryAvailableBytes / 2 ** 20)} MiB`;
    const beat = w.lastHeartbeatAt === null ? '-' : `${Math.max(0, Math.round((now - Date.parse(w.lastHeartbeatAt)) / 100) / 10)} s ago`;
    // A manager that predates availability sends none: every worker was active then.
    rows.push([w.id, w.state, w.apiAddress, w.runtime, String(w.taskCount), cpu, mem, w.availability ?? 'active', beat]);
  }
  printLine(formatTable(rows));
  // Below the table, so its columns stay where scripts find them; a manager that predates it sends none.
  for (const w of items) {
    const e = w.engineUnreachable;
    // A down worker's last word on its engine is stale: nothing is placed on it anyway.
    if (e !== undefined && w.state !== 'down') printLine(`${w.id}: engine unreachable: ${e.reason} since ${e.since} (nothing new is placed on it)`);
  }
}

/** KEY=VALUE for --env; repeated flags accumulate. */
export function parseEnvPair(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = text.indexOf('=');
  if (i <= 0) throw new MinkubeError('INVALID_PARAM', `--env expects KEY=VALUE, got ${JSON.stringify(text)}`);
  return { ...previous, [text.slice(0, i)]: text.slice(i + 1) };
}

/**
 * NAME=VALUE for --secret-env; repeated flags accumulate. A bad argument is not echoed: it may hold the secret. A
 * name the managers would refuse is named (names are shown by every answer), its value never.
 */
export function parseSecretEnvPair(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = text.indexOf('=');
  if (i <= 0) throw new MinkubeError('INVALID_PARAM', '--secret-env expects NAME=VALUE (the argument is not shown here)');
  const name = text.slice(0, i);
  if (!isEnvName(name)) throw new MinkubeError('INVALID_PARAM', `--secret-env ${shownName(name)}: not a valid variable name (${envNameRule}; the value is not shown here)`);
  return { ...previous, [name]: text.slice(i + 1) };
}

/**
 * The text of a --secret-env-file: NAME=VALUE a line, the value the rest of the line as written (a CR before the
 * newline dropped); blank lines and lines starting with # are skipped. A bad line is named by number, never shown.
 */
export function parseSecretEnvFile(text: string, file: string, previous: Record<string, string> = {}): Record<string, string> {
  let out = previous;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i <= 0) throw new MinkubeError('INVALID_PARAM', `--secret-env-file ${file}: line ${n + 1} is not NAME=VALUE`);
    const name = line.slice(0, i);
    if (!isEnvName(name)) throw new MinkubeError('INVALID_PARAM', `--secret-env-file ${file}: line ${n + 1}: ${shownName(name)} is not a valid variable name (${envNameRule})`);
    out = { ...out, [name]: line.slice(i + 1) };
  }
  return out;
}

/** Kept as given: commander's message for a refused argument would print it, and it holds a secret. */
export function collectSecretEnv(text: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), text];
}

/** --secret-env and --secret-env-file as `task run`, `service create` and `service update` take them. */
export interface SecretEnvFlags {
  secretEnv?: string[];
  secretEnvFile?: Record<string, string>;
}

/** The file's variables, then the flags' (a flag wins over the same name in a file); a bad flag is a usage error. */
export function secretEnvOf(f: SecretEnvFlags, cmd: Command): Record<string, string> {
  let out = { ...f.secretEnvFile };
  try {
    for (const pair of f.secretEnv ?? []) out = parseSecretEnvPair(pair, out);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  return out;
}

/** A --secret-env-file's variables added to the earlier ones; an unreadable file or a bad line is a usage error. */
export function parseSecretEnvFileFlag(file: string, previous: Record<string, string> | undefined): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseSecretEnvFile(text, file, previous);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The two flags' definitions, the same for every command that takes them. */
export function secretEnvOptions(c: Command): Command {
  return c
    .option(
      '--secret-env <NAME=VALUE>',
      'a secret environment variable (repeatable): given to the task, shown by no answer; a value here is visible to ps and the shell history, so prefer --secret-env-file',
      collectSecretEnv,
    )
    .option('--secret-env-file <file>', 'secret environment variables from a file, NAME=VALUE a line (# comments): the recommended form', parseSecretEnvFileFlag);
}

/** A refused variable name as a message shows it: quoted, control characters escaped, a long one cut. */
function shownName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 32)}...` : name);
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}
