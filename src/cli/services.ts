// `minkube service create|ls|get|scale|update|rollback|logs|rm` over the service routes; --json prints the answers as they
// came. --wait follows the service until it is stable (every replica healthy and of the current version for the
// service's monitorS, no rollout under way) with a line per change, and exits 1 as soon as its rollout rolled back or
// paused, or a replica failed.
import { InvalidArgumentError, type Command } from 'commander';
import { failureActions, updateOrders, type ReplicaView, type ServiceView } from '../contracts/service-model.js';
import type { Page } from '../contracts/services.js';
import { stopSignals, taskPriorities, type HealthCheckSpec, type TaskSpec } from '../contracts/task-model.js';
import { limits } from '../lib/limits.js';
import { MinkubeError } from '../lib/errors.js';
import type { ApiClient } from '../client/api-client.js';
import { apiClientFor } from './connection.js';
import { integerIn, missingRequired, numberIn, oneOf } from './flags.js';
import { commandText, formatTable, printJson, printLine, type Output } from './output.js';
import { runServiceLogs } from './service-logs.js';
import { CliExit, parseEnvPair, pollFailureTolerated, secretEnvOf, secretEnvOptions, type SecretEnvFlags } from './tasks.js';

type Globals = (cmd: Command) => { api: string; out: Output };

interface SpecFlags extends SecretEnvFlags {
  env?: Record<string, string>;
  port?: string[];
  healthHttp?: string;
  healthTcp?: string;
  healthExec?: string;
  healthInterval?: number;
  healthTimeout?: number;
  healthRetries?: number;
  healthStartPeriod?: number;
  parallelism?: number;
  updateDelay?: number;
  monitor?: number;
  failureAction?: string;
  order?: string;
  constraint?: string[];
  priority?: string;
  namespace?: string;
  stopSignal?: string;
  stopTimeout?: number;
  wait?: boolean;
}

/** --stop-signal and --stop-timeout, shared with `task run`: the spec's stopSignal and stopTimeoutS. */
export const stopSignalOption = ['--stop-signal <signal>', `what a stop sends first: ${stopSignals.join(' | ')} (default SIGTERM)`] as const;
export const stopTimeoutOption = ['--stop-timeout <s>', `seconds from the stop signal to SIGKILL, 0..${limits.taskStopTimeoutSMax} (default: the worker's tasks.stopTimeoutMs)`] as const;

export function parseStopSignal(v: string): string {
  if (!(stopSignals as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${stopSignals.join(', ')}.`);
  return v;
}

export function parseStopTimeout(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n > limits.taskStopTimeoutSMax) throw new InvalidArgumentError(`expected an integer from 0 to ${limits.taskStopTimeoutSMax}.`);
  return n;
}

/** The flags' stop fields, to spread into a task spec. */
export function stopFieldsOf(f: { stopSignal?: string; stopTimeout?: number }): Pick<TaskSpec, 'stopSignal' | 'stopTimeoutS'> {
  return {
    ...(f.stopSignal === undefined ? {} : { stopSignal: f.stopSignal as NonNullable<TaskSpec['stopSignal']> }),
    ...(f.stopTimeout === undefined ? {} : { stopTimeoutS: f.stopTimeout }),
  };
}

const path = (name: string): string => `/v1/services/${encodeURIComponent(name)}`;

/** Whether any health-check flag is given (a kind, or a timing alone). */
function healthFlagsGiven(f: SpecFlags): boolean {
  return [f.healthHttp, f.healthTcp, f.healthExec, f.healthInterval, f.healthTimeout, f.healthRetries, f.healthStartPeriod].some((v) => v !== undefined);
}

/**
 * The request's health check from the flags (at most one kind), or undefined when none is given. `current`: the
 * service's check for an update (null: it has none), whose timings stay unless a flag changes them, and whose kind
 * stays when only timings are given; undefined for a create, where a timing takes the defaults' place and a timing
 * without a kind is a usage error (it was dropped silently).
 */
function healthCheckOf(f: SpecFlags, cmd: Command, current?: HealthCheckSpec | null, portNames: readonly string[] = f.port ?? []): HealthCheckSpec | undefined {
  const kinds = [f.healthHttp, f.healthTcp, f.healthExec].filter((k) => k !== undefined).length;
  if (kinds > 1) cmd.error('error: give at most one of --health-http, --health-tcp and --health-exec');
  const base = current ?? { intervalS: 5, timeoutS: 2, retries: 3, startPeriodS: 0 };
  const timing = {
    intervalS: f.healthInterval ?? base.intervalS, timeoutS: f.healthTimeout ?? base.timeoutS,
    retries: f.healthRetries ?? base.retries, startPeriodS: f.healthStartPeriod ?? base.startPeriodS,
  };
  if (kinds === 0) {
    if (!healthFlagsGiven(f)) return undefined;
    const which = 'give --health-http, --health-tcp or --health-exec with it';
    if (current === undefined) return cmd.error(`error: --health-interval, --health-timeout, --health-retries and --health-start-period set a health check's timings: ${which}`);
    if (current === null) return cmd.error(`error: the service has no health check to change the timings of: ${which}`);
    return { ...current, ...timing };
  }
  if (f.healthHttp !== undefined) {
    const [port, ...rest] = f.healthHttp.split(':');
    namedPortOrExit('--health-http', f.healthHttp, port ?? '', portNames, cmd);
    return { type: 'http', port: port ?? '', path: rest.length === 0 ? '/' : rest.join(':'), ...timing };
  }
  if (f.healthTcp !== undefined) {
    namedPortOrExit('--health-tcp', f.healthTcp, f.healthTcp, portNames, cmd);
    return { type: 'tcp', port: f.healthTcp, ...timing };
  }
  const command = splitCommandLine(f.healthExec!);
  if (typeof command === 'string') cmd.error(`error: --health-exec: ${command}`);
  return { type: 'exec', command, ...timing };
}

/**
 * A command line split into its words as a shell would, without running one: words at unquoted blanks; inside single
 * quotes everything is literal; inside double quotes a backslash escapes only \\, ", $ and `; outside quotes a
 * backslash escapes the next character; quoted and unquoted parts that touch make one word. `$NAME` is kept as it is
 * (the command runs without a shell unless it names one, as `sh -c "..."`). A quote left open is the answer's reason.
 * The dashboard's task form splits its Command field with a copy of this (ui/lib.js: the page is served unbuilt);
 * test/ui/command-line.test.ts holds the two to the same answers.
 */
export function splitCommandLine(line: string): string[] | string {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return `the single quote at character ${i + 1} is not closed`;
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '\\"$`'.includes(line[j + 1]!)) j++;
        word += line[j];
      }
      if (j >= line.length) return `the double quote at character ${i + 1} is not closed`;
      inWord = true;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * A health check's PORT is the name of one of the service's ports (the worker picks each host port, so no number can
 * be known before): one that is not is a usage error before any request, listing the names there are, rather than the
 * API's INVALID_BODY (`not a valid port name`) after it.
 */
function namedPortOrExit(flag: string, value: string, port: string, names: readonly string[], cmd: Command): void {
  if (names.includes(port)) return;
  const there = names.length === 0 ? 'the service has no port: give one with --port NAME' : `its ports: ${names.join(', ')}`;
  const number = /^[0-9]+$/.test(port) ? ' (not a number: the worker picks the host port)' : '';
  cmd.error(`error: ${flag} ${value}: PORT must name a port of the service given with --port${number}; ${there}`);
}

/**
 * The service-level parts of a create or update body that the flags give; `currentHealth` as healthCheckOf's `current`
 * (an update's health flags change the check the service has).
 */
function partsOf(f: SpecFlags, cmd: Command, currentHealth?: HealthCheckSpec | null, currentPorts: readonly string[] = []): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (f.port !== undefined) body.ports = f.port.map((name) => ({ name }));
  const health = healthCheckOf(f, cmd, currentHealth, f.port ?? currentPorts);
  if (health !== undefined) body.healthCheck = health;
  const update: Record<string, unknown> = {};
  if (f.parallelism !== undefined) update.parallelism = f.parallelism;
  if (f.updateDelay !== undefined) update.delayS = f.updateDelay;
  if (f.monitor !== undefined) update.monitorS = f.monitor;
  if (f.failureAction !== undefined) update.failureAction = f.failureAction;
  if (f.order !== undefined) update.order = f.order;
  if (Object.keys(update).length > 0) body.update = update;
  if (f.constraint !== undefined) body.constraints = f.constraint;
  if (f.priority !== undefined) body.priority = f.priority;
  if (f.namespace !== undefined) body.namespace = f.namespace;
  return body;
}

/**
 * The service on one line: its counts, its rollout, and why it is short of healthy replicas when the view says: a
 * replica no worker can take (`; waiting: replica t... has no worker to run on (...)`, unless the rollout's message
 * says it already), else the failure of the first replica (by task id) that is not healthy now.
 */
export function summary(s: ServiceView): string {
  const r = s.replicas;
  const rollout = s.rollout.state === 'stable' ? '' : `, rollout ${s.rollout.state}${s.rollout.message === null ? '' : ` (${s.rollout.message})`}`;
  let why = '';
  if (s.waiting !== null && s.waiting !== s.rollout.message) why = `; ${s.waiting}`;
  else if (s.waiting === null) {
    const failing = s.tasks.find((t) => t.desiredState === 'run' && t.failure !== null && (t.state !== 'running' || (t.health !== null && t.health !== 'healthy')));
    if (failing !== undefined) why = `; replica ${failing.taskId} of version ${failing.version} failed: ${failing.failure}`;
  }
  return `service ${s.name}: ${r.healthy}/${r.desired} healthy, ${r.running} running, version ${s.version}${rollout}${why}`;
}

/** What --wait makes of a reading: go on, done, or failed with the reason to print after `error: `. */
export type WaitVerdict = { readonly verdict: 'wait' | 'done' } | { readonly verdict: 'failed'; readonly message: string };

/**
 * What --wait makes of the readings of a service, from the answer of the request it follows (create, scale, update,
 * rollback). A rollout it follows (`rollout`) that paused or rolled back fails the wait at once: a paused one keeps
 * replicas of both versions and may never have them all healthy; while the rollout goes on, it judges the replicas
 * itself (a batch is healthy for monitorS before the next). Otherwise a replica that fails by its own doing (it
 * exits, cannot start, or turns unhealthy: a `failure` on an attempt later than the one the first reading showed, or
 * unhealthy now) fails the wait at once, as it fails a rollout; and the wait is done once every replica has been
 * healthy and of the current version for the service's update.monitorS (as `docker service create` waits its
 * monitor period), the same replicas and attempts all along: a replica that crash-loops is running at times, but never
 * that long. A service paused by an earlier rollout (a scale) is done once it has the count of replicas, whatever
 * their version and health: it keeps its failing replica until the next change. Pure: the caller gives the time.
 */
export class ServiceWait {
  private readonly firstAttempts = new Map<string, number>();
  /** Since when the service has looked stable, and with which replicas and attempts; null: it does not now. */
  private stable: { readonly sinceMs: number; readonly replicas: string } | null = null;

  constructor(first: ServiceView, private readonly rollout: boolean) {
    for (const t of first.tasks) this.firstAttempts.set(t.taskId, t.attempt);
  }

  /** Seconds the replicas must stay healthy before the wait is done (0: done as soon as they are). */
  static windowS(s: ServiceView, rollout: boolean): number {
    // A rollout followed to its end watched every batch for monitorS already; a service without replicas has nothing to watch.
    return rollout || s.replicas.desired === 0 ? 0 : s.update.monitorS;
  }

  /** Whether the service is watched now for staying stable (a progress line says so). */
  get watching(): boolean {
    return this.stable !== null;
  }

  step(s: ServiceView, nowMs: number): WaitVerdict {
    const state = s.rollout.state;
    if (this.rollout && (state === 'paused' || state === 'rolled-back')) {
      // The rollout's message names its state ("paused: replica ... failed: ..."), so it is not said twice.
      return { verdict: 'failed', message: `service ${s.name} ${s.rollout.message ?? `${state}: no reason was recorded`}` };
    }
    if (this.rollout && state === 'rolling-back' && s.rollout.message !== null) {
      // The update failed and goes back to the version that ran before, replacing a replica that fails on the way, for
      // as long as it takes: one that does fails the wait, which would otherwise follow that for ever.
      const failed = this.failedReplicaOf(s, s.version);
      if (failed !== null) {
        return { verdict: 'failed', message: `service ${s.name} ${s.rollout.message}; on the way back, replica ${failed.taskId} of version ${failed.version} failed too: ${failed.failure} (the service goes on replacing it)` };
      }
    }
    if (state === 'updating' || state === 'rolling-back') return this.notStable();
    if (state === 'paused') return s.tasks.length === s.replicas.desired && s.tasks.every((t) => t.desiredState === 'run') ? { verdict: 'done' } : { verdict: 'wait' };
    const failed = this.failedReplica(s);
    if (failed !== null) return failed;
    if (s.tasks.length !== s.replicas.desired) return this.notStable();
    const current = s.tasks.filter((t) => t.version === s.version && t.desiredState === 'run').length;
    if (s.replicas.healthy !== s.replicas.desired || current !== s.replicas.desired) return this.notStable();
    const windowMs = ServiceWait.windowS(s, this.rollout) * 1000;
    if (windowMs === 0) return { verdict: 'done' };
    const replicas = s.tasks.map((t) => `${t.taskId}@${t.attempt}`).sort().join(' ');
    if (this.stable === null || this.stable.replicas !== replicas) this.stable = { sinceMs: nowMs, replicas };
    return nowMs - this.stable.sinceMs >= windowMs ? { verdict: 'done' } : { verdict: 'wait' };
  }

  private notStable(): WaitVerdict {
    this.stable = null;
    return { verdict: 'wait' };
  }

  /** A replica meant to run that failed by its own doing since the first reading, or is unhealthy now. */
  private failedReplica(s: ServiceView): WaitVerdict | null {
    const t = this.failedReplicaOf(s, null);
    return t === null ? null : { verdict: 'failed', message: `service ${s.name}: replica ${t.taskId} of version ${t.version} failed: ${t.failure}` };
  }

  /** The first such replica, of `version` only unless null. */
  private failedReplicaOf(s: ServiceView, version: number | null): (ReplicaView & { failure: string }) | null {
    for (const t of s.tasks) {
      if (t.desiredState !== 'run' || t.failure === null || (version !== null && t.version !== version)) continue;
      if (t.health === 'unhealthy' || t.attempt > (this.firstAttempts.get(t.taskId) ?? 1)) return { ...t, failure: t.failure };
    }
    return null;
  }
}

/**
 * Follows the service until it is stable, a line per change; exits 1 with the reason if its rollout rolled back or
 * paused, or a replica failed.
 */
async function waitStable(apiUrl: string, first: ServiceView, out: Output, rollout: boolean, pollMs = 250): Promise<void> {
  const client = apiClientFor(apiUrl, { readRetries: 2 });
  const wait = new ServiceWait(first, rollout);
  let last = '';
  let s = first;
  let verdict: WaitVerdict;
  for (;;) {
    verdict = wait.step(s, performance.now());
    const watching = verdict.verdict === 'wait' && wait.watching ? `; watching for ${ServiceWait.windowS(s, rollout)} s that they stay healthy` : '';
    const line = summary(s) + watching;
    if (line !== last && !out.json) printLine(line);
    last = line;
    if (verdict.verdict !== 'wait') break;
    s = await nextReading(client, first.name, pollMs);
  }
  if (out.json) printJson(s);
  if (verdict.verdict === 'failed') {
    process.stderr.write(`error: ${verdict.message}\n`);
    throw new CliExit(1);
  }
}

/** The service pollMs from now, riding out a slow or changing cluster (pollFailureTolerated). */
async function nextReading(client: ApiClient, name: string, pollMs: number): Promise<ServiceView> {
  for (let failures = 0; ; ) {
    await new Promise((r) => setTimeout(r, pollMs));
    try {
      return await client.request<ServiceView>('GET', path(name));
    } catch (err) {
      if (!pollFailureTolerated(err, ++failures)) throw err;
    }
  }
}

/** How many times `service update` makes its change again on a service another update changed meanwhile. */
const serviceUpdateAttemptsMax = 5;

/** The PATCH body of `service update`: the parts its flags give; with a task change, the task read now changed so. */
async function updateBody(
  client: ApiClient, name: string, command: string[], f: SpecFlags & { image?: string; replicas?: number }, cmd: Command, secrets: Record<string, string> | undefined, readsTask: boolean,
): Promise<Record<string, unknown>> {
  // Health flags change the check the service has (its other timings kept): read, then sent back with ifVersion.
  const current = readsTask || healthFlagsGiven(f) ? await client.request<ServiceView>('GET', path(name)) : null;
  const currentPorts = (current?.spec.ports ?? []).map((p) => p.name);
  const body: Record<string, unknown> = partsOf(f, cmd, current === null ? undefined : (current.spec.healthCheck ?? null), currentPorts);
  if (current !== null) body.ifVersion = current.version;
  if (readsTask && current !== null) {
    const task: Record<string, unknown> = { ...(current.spec as TaskSpec) };
    // What the service adds to the task is kept by the PATCH itself. The current secret values come back as
    // "<redacted>", which a service PATCH takes to mean "keep this variable's value".
    for (const k of ['ports', 'healthCheck', 'constraints', 'priority', 'namespace']) delete task[k];
    if (f.image !== undefined) task.image = f.image;
    if (f.env !== undefined) task.env = { ...current.spec.env, ...f.env };
    if (secrets !== undefined) task.secretEnv = { ...current.spec.secretEnv, ...secrets };
    const moved = Object.keys(f.env ?? {}).filter((k) => current.spec.secretEnv?.[k] !== undefined && secrets?.[k] === undefined);
    if (moved.length > 0) {
      throw new MinkubeError('INVALID_PARAM', `${moved.join(', ')} ${moved.length === 1 ? 'is a secret variable' : 'are secret variables'} of this service: give ${moved.length === 1 ? 'it' : 'them'} with --secret-env, not --env`);
    }
    const exposed = Object.keys(secrets ?? {}).filter((k) => current.spec.env?.[k] !== undefined && f.env?.[k] === undefined);
    for (const k of exposed) delete (task.env as Record<string, string>)[k];
    if (command.length > 0) task.command = command;
    Object.assign(task, stopFieldsOf(f));
    body.task = task;
  }
  if (f.replicas !== undefined) body.replicas = f.replicas;
  return body;
}

async function answer(apiUrl: string, s: ServiceView, wait: boolean | undefined, out: Output): Promise<void> {
  // A rollout under way now (an update's, or a rollback asked for) is the one followed: its failure fails the command.
  if (wait === true) return waitStable(apiUrl, s, out, s.rollout.state === 'updating' || s.rollout.state === 'rolling-back');
  if (out.json) printJson(s);
  else printLine(summary(s));
}

/** A health check on one line: `http web:/healthz every 5s, timeout 2s, 3 retries, start period 0s`. */
export function healthText(h: HealthCheckSpec): string {
  const what = h.type === 'http' ? `http ${h.port}:${h.path ?? '/'}` : h.type === 'tcp' ? `tcp ${h.port}` : `exec ${commandText(h.command ?? [])}`;
  return `${what} every ${h.intervalS}s, timeout ${h.timeoutS}s, ${h.retries} ${h.retries === 1 ? 'retry' : 'retries'}, start period ${h.startPeriodS}s`;
}

function printService(s: ServiceView): void {
  printLine(summary(s));
  printLine(`versions: ${s.versions.join(', ')} (previous ${s.previousVersion ?? 'none'})`);
  printLine(`image: ${s.spec.image}${s.spec.command === undefined ? '' : `  command: ${commandText(s.spec.command)}`}`);
  if (s.spec.healthCheck !== undefined) printLine(`health: ${healthText(s.spec.healthCheck)}`);
  printLine(`update: parallelism ${s.update.parallelism}, delay ${s.update.delayS}s, monitor ${s.update.monitorS}s, ${s.update.order}, on failure ${s.update.failureAction}`);
  printLine(formatTable([['TASK', 'VERSION', 'STATE', 'DESIRED', 'HEALTH', 'WORKER', 'PORTS'], ...replicaRows(s)]));
}

/** `service get`'s replica rows; a replica its worker's drain is stopping (healthy there still, maybe) says so. */
export function replicaRows(s: Pick<ServiceView, 'tasks'>): string[][] {
  return s.tasks.map((t) => [
    t.taskId, String(t.version), t.state, t.draining ? `${t.desiredState} (draining)` : t.desiredState, t.health ?? '-', t.workerId ?? '-',
    t.ports.map((p) => `${p.name}=${p.address}`).join(' ') || '-',
  ]);
}

const collect = (v: string, all: string[] = []): string[] => [...all, v];
const collectEnv = (v: string, all: Record<string, string> = {}): Record<string, string> => {
  try {
    return parseEnvPair(v, all);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const count = integerIn(0, Number.MAX_SAFE_INTEGER);
// The bounds the managers check (POST and PATCH /v1/services), so that what they would refuse is a usage error here.
const replicasCount = integerIn(0, limits.serviceReplicasMax);

/** A count given as an argument (not an option): the error names it. */
function replicasArgument(name: string, v: string): number {
  try {
    return replicasCount(v);
  } catch (err) {
    throw new InvalidArgumentError(`<${name}>: ${(err as Error).message}`);
  }
}

function specOptions(c: Command): Command {
  return secretEnvOptions(c.option('--env <KEY=VALUE>', 'an environment variable (repeatable)', collectEnv))
    .option('--port <name>', 'a named port (repeatable): the worker passes MINKUBE_PORT_<NAME> (and PORT for the first)', collect)
    .option('--health-http <port[:path]>', 'health check: GET on that port, a name given with --port (2xx or 3xx is healthy; path default /)')
    .option('--health-tcp <port>', 'health check: a TCP connection to that port, a name given with --port')
    .option('--health-exec <command>', 'health check: a command that exits 0 (inside the container, or on the host for processes)')
    .option('--health-interval <s>', 'seconds between checks (default 5)', numberIn(limits.healthCheckIntervalSMin, limits.healthCheckIntervalSMax))
    .option('--health-timeout <s>', 'seconds a check may take (default 2)', numberIn(limits.healthCheckTimeoutSMin, limits.healthCheckTimeoutSMax))
    .option('--health-retries <n>', 'failures in a row that make a replica unhealthy (default 3)', integerIn(1, limits.healthCheckRetriesMax))
    .option('--health-start-period <s>', 'failures in the first seconds do not count (default 0)', numberIn(0, limits.healthCheckStartPeriodSMax))
    .option('--parallelism <n>', 'replicas replaced at once by a rollout (default 1)', integerIn(1, limits.serviceReplicasMax))
    .option('--update-delay <s>', 'seconds between batches (default 0)', numberIn(0, limits.serviceUpdateDelaySMax))
    .option('--monitor <s>', 'seconds a batch must stay healthy, and --wait the replicas (default 10)', numberIn(0, limits.serviceUpdateMonitorSMax))
    .option('--failure-action <action>', `${failureActions.join(' | ')} (default rollback)`, oneOf(failureActions))
    .option('--order <order>', `${updateOrders.join(' | ')} (default stop-first)`, oneOf(updateOrders))
    .option('--constraint <expr>', 'a placement constraint on worker labels (repeatable)', collect)
    .option('--priority <p>', taskPriorities.join(' | '), oneOf(taskPriorities))
    .option('--namespace <ns>', 'the namespace its replicas count against')
    .option(...stopSignalOption, parseStopSignal)
    .option(...stopTimeoutOption, parseStopTimeout)
    .option('--wait', 'show progress until the service is stable; exit 1 if its rollout rolled back or paused');
}

export function addServiceCommands(program: Command, globals: Globals): void {
  const service = program.command('service').description('replicated long-running tasks: create, scale, update, roll back, remove');
  // NAME and IMAGE are optional to commander only so that one message names everything missing (missingRequired).
  specOptions(service.command('create [name] [image] [command...]').usage('[options] <name> <image> [command...]').description('create a service (put the command after --)'))
    .option('--replicas <n>', 'replicas to keep running and healthy (required)', replicasCount)
    .action(async (name: string | undefined, image: string | undefined, command: string[], f: SpecFlags & { replicas?: number }, cmd: Command) => {
      if (name === undefined || image === undefined || f.replicas === undefined) {
        return cmd.error(`error: ${missingRequired([['name', name], ['image', image]], [['--replicas <n>', f.replicas]])}`);
      }
      const g = globals(cmd);
      const task: Record<string, unknown> = { image, ...stopFieldsOf(f) };
      if (command.length > 0) task.command = command;
      if (f.env !== undefined) task.env = f.env;
      if (f.secretEnv !== undefined || f.secretEnvFile !== undefined) task.secretEnv = secretEnvOf(f, cmd);
      const s = await apiClientFor(g.api).request<ServiceView>('POST', '/v1/services', { body: { name, task, replicas: f.replicas, ...partsOf(f, cmd) } });
      await answer(g.api, s, f.wait, g.out);
    });
  service
    .command('ls')
    .alias('list')
    .description('the services: replicas healthy/desired, version, rollout')
    .action(async (_f: object, cmd: Command) => {
      const g = globals(cmd);
      const client = apiClientFor(g.api, { readRetries: 2 });
      const items: ServiceView[] = [];
      for (let cursor: string | null = null; ; ) {
        const page: Page<ServiceView> = await client.request<Page<ServiceView>>('GET', `/v1/services?limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`);
        items.push(...page.items);
        cursor = page.nextCursor;
        if (cursor === null) break;
      }
      if (g.out.json) return printJson({ items, nextCursor: null });
      const rows = items.map((s) => [s.name, `${s.replicas.healthy}/${s.replicas.desired}`, String(s.replicas.running), String(s.version), s.rollout.state, s.spec.image]);
      printLine(formatTable([['NAME', 'HEALTHY', 'RUNNING', 'VERSION', 'ROLLOUT', 'IMAGE'], ...rows]));
    });
  service
    .command('get <name>')
    .description('one service: replicas, versions, rollout, and each replica (task, version, state, health, worker, ports)')
    .action(async (name: string, _f: object, cmd: Command) => {
      const g = globals(cmd);
      const s = await apiClientFor(g.api, { readRetries: 2 }).request<ServiceView>('GET', path(name));
      if (g.out.json) printJson(s);
      else printService(s);
    });
  service
    .command('scale <name> <replicas>')
    .description('change the number of replicas')
    .option('--wait', 'show progress until the service is stable')
    .action(async (name: string, replicas: string, f: { wait?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const s = await apiClientFor(g.api).request<ServiceView>('PATCH', path(name), { body: { replicas: replicasArgument('replicas', replicas) } });
      await answer(g.api, s, f.wait, g.out);
    });
  specOptions(service.command('update <name> [command...]').description('a new version (rolled out) from the current one with these changes'))
    .option('--image <image>', 'the new image')
    .option('--replicas <n>', 'also change the number of replicas', replicasCount)
    .action(async (name: string, command: string[], f: SpecFlags & { image?: string; replicas?: number }, cmd: Command) => {
      const g = globals(cmd);
      const client = apiClientFor(g.api);
      const secrets = f.secretEnv !== undefined || f.secretEnvFile !== undefined ? secretEnvOf(f, cmd) : undefined;
      const readsTask = f.image !== undefined || f.env !== undefined || secrets !== undefined || command.length > 0 || f.stopSignal !== undefined || f.stopTimeout !== undefined;
      if (!readsTask && f.replicas === undefined && !healthFlagsGiven(f) && Object.keys(partsOf(f, cmd)).length === 0) cmd.error('error: nothing to change: give --image, --env, a command, or another flag');
      // A task changed here is the one read with these changes, sent whole with the version read (ifVersion): another
      // update applied in between is not undone by it, the 409 says so, and the change is made again on what is now.
      for (let attempt = 1; ; attempt++) {
        try {
          const s = await client.request<ServiceView>('PATCH', path(name), { body: await updateBody(client, name, command, f, cmd, secrets, readsTask) });
          return await answer(g.api, s, f.wait, g.out);
        } catch (err) {
          if (!(err instanceof MinkubeError && err.code === 'SERVICE_VERSION_MISMATCH') || attempt >= serviceUpdateAttemptsMax) throw err;
        }
      }
    });
  service
    .command('rollback <name>')
    .description('back to the previous version (rolled out like an update)')
    .option('--wait', 'show progress until the service is stable')
    .action(async (name: string, f: { wait?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const s = await apiClientFor(g.api).request<ServiceView>('POST', `${path(name)}/rollback`);
      await answer(g.api, s, f.wait, g.out);
    });
  service
    .command('logs <name>')
    .description("every replica's output, each line prefixed with its task id and worker")
    .option('--tail <n>', 'the last n lines of each replica (default 1000)', count)
    .option('-f, --follow', 'then the output as it is written, from every replica, new ones included, until the service is removed')
    .action(async (name: string, f: { tail?: number; follow?: boolean }, cmd: Command) => {
      await runServiceLogs(globals(cmd).api, name, f.tail ?? 1000, f.follow === true);
    });
  service
    .command('rm <name>')
    .alias('remove')
    .description('remove the service and stop every replica')
    .action(async (name: string, _f: object, cmd: Command) => {
      const g = globals(cmd);
      const r = await apiClientFor(g.api).request<{ name: string; stopping: number }>('DELETE', path(name));
      if (g.out.json) printJson(r);
      else printLine(`service ${r.name} removed; stopping ${r.stopping} replica${r.stopping === 1 ? '' : 's'}`);
    });
}
