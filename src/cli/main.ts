// The `minkube` command line. Exit codes: 0 success, 1 a failure (printed as "error: CODE: message"), 2 bad usage.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { apiUrlsOf, cliApiUrl, closeCliConnections, failureHints } from './connection.js';
import { baseUrlProblem, isPlainHttp } from '../client/index.js';
import type { WorkerFlags } from './daemons.js';
import { readStdinText, runKvDelete, runKvGet, runKvPut } from './kv.js';
import { runLeaderTransfer, runMemberAdd, runMemberList, runMemberRemove } from './members.js';
import { integerIn, oneOf } from './flags.js';
import { asMinkubeError, printError, type Output } from './output.js';
import { runStatus } from './status.js';
import { addTokenCommands } from './tokens.js';
import { addAuditCommand } from './audit.js';
import { addPrometheusConfigCommand } from './prometheus-config.js';
import { addSnapshotCommands } from './snapshot.js';
import { addGcCommand } from './gc.js';
import { addReloadCommand } from './reload.js';
import { addServiceCommands, parseStopSignal, parseStopTimeout, stopFieldsOf, stopSignalOption, stopTimeoutOption } from './services.js';
import { runTaskRunMany } from './task-many.js';
import { addPlacementCommands } from './quota.js';
import {
  CliExit, parseEnvPair, runTaskGet, runTaskList, runTaskLogs, runTaskRun, runTaskStop, runWorkerAvailability, runWorkerList, runWorkerRemove, secretEnvOf, secretEnvOptions,
} from './tasks.js';
import { limits } from '../lib/limits.js';
import { buildInfo, buildText } from '../lib/build-info.js';
import { commandVersion } from '../contracts/command-version.js';
import { taskPriorities, type TaskSpec } from '../contracts/task-model.js';
import type { ManagerFlags } from './daemons.js';

const defaultApi = 'http://127.0.0.1:8001';
// The long-running commands are imported when used: the config schema (TypeBox) alone takes a second to load.

interface GlobalOptions {
  api?: string;
  json?: boolean;
}

/** The most a count flag takes (`task ls --limit`): what nine digits hold, said in the message rather than left to guess. */
const countFlagMax = 999_999_999;

function parsePositive(text: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new InvalidArgumentError(`expected an integer from 1 to ${countFlagMax}.`);
  return Number(text);
}

function parseNonNegative(text: string): number {
  if (!/^(0|[1-9][0-9]{0,8})$/.test(text)) throw new InvalidArgumentError('expected an integer >= 0.');
  return Number(text);
}

function parseCount(text: string): number {
  const n = /^[1-9][0-9]{0,8}$/.test(text) ? Number(text) : 0;
  if (n < 1 || n > limits.taskRunCountMax) throw new InvalidArgumentError(`expected an integer from 1 to ${limits.taskRunCountMax}.`);
  return n;
}

function parseEnv(text: string, previous: Record<string, string> | undefined): Record<string, string> {
  try {
    return parseEnvPair(text, previous);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const restartPolicies = ['never', 'on-failure', 'always'];
const taskStates = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'];

interface TaskRunFlags {
  env?: Record<string, string>;
  secretEnv?: string[];
  secretEnvFile?: Record<string, string>;
  restart?: string;
  maxAttempts?: number;
  name?: string;
  wait?: boolean;
  follow?: boolean;
  count?: number;
  constraint?: string[];
  priority?: string;
  namespace?: string;
  port?: string[];
  cpus?: number;
  memoryMb?: number;
  stopSignal?: string;
  stopTimeout?: number;
}

function specFrom(image: string, command: string[], f: TaskRunFlags, cmd: Command): TaskSpec {
  const spec: { -readonly [K in keyof TaskSpec]: TaskSpec[K] } = { image };
  if (f.name !== undefined) spec.name = f.name;
  if (command.length > 0) spec.command = command;
  if (f.env !== undefined) spec.env = f.env;
  if (f.secretEnv !== undefined || f.secretEnvFile !== undefined) spec.secretEnv = secretEnvOf(f, cmd);
  if (f.restart !== undefined) spec.restartPolicy = f.restart as TaskSpec['restartPolicy'] & string;
  if (f.maxAttempts !== undefined) spec.maxAttempts = f.maxAttempts;
  if (f.cpus !== undefined || f.memoryMb !== undefined) spec.resources = { ...(f.cpus === undefined ? {} : { cpus: f.cpus }), ...(f.memoryMb === undefined ? {} : { memoryMb: f.memoryMb }) };
  if (f.constraint !== undefined) spec.constraints = f.constraint;
  if (f.priority !== undefined) spec.priority = f.priority as TaskSpec['priority'] & string;
  if (f.namespace !== undefined) spec.namespace = f.namespace;
  if (f.port !== undefined) spec.ports = f.port.map((name) => ({ name }));
  return { ...spec, ...stopFieldsOf(f) };
}

/** A reservation: more than 0, at most what the API takes (lib/limits.ts). */
function amountUpTo(max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`expected a number > 0 and <= ${max}, got ${JSON.stringify(text)}.`);
    return n;
  };
}

function parseVersion(text: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new InvalidArgumentError('expected an integer >= 0.');
  return Number(text);
}

/**
 * "0.1.0 (commit 1a2b3c4), command version 11": the build, and the newest command version its managers understand
 * (see README "Upgrading").
 */
function versionText(): string {
  return `${buildText(buildInfo())}, command version ${commandVersion}`;
}

/**
 * --api: every entry of the list an http(s) URL or a host:port; anything else (`not-a-url`, which would be tried as a
 * host name until UNREACHABLE, or ftp://x) is a usage error (exit 2).
 */
function parseApiFlag(text: string): string {
  let urls: string[];
  try {
    urls = apiUrlsOf(text);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
  for (const url of urls) {
    const problem = baseUrlProblem(url);
    if (problem !== null) throw new InvalidArgumentError(`${problem} (expected http://HOST:PORT, https://HOST:PORT or HOST:PORT).`);
  }
  return text;
}

/**
 * --join http://HOST:PORT with --token or --token-file: a usage error (exit 2) before anything starts. A join token is
 * sent only over TLS pinned to the CA it names (a plain http:// join would hand it to whoever answers that address,
 * and a secure cluster's managers speak only https); an insecure cluster, joined through http://, takes none.
 */
function refuseJoinTokenInClear(f: { join?: string; token?: string; tokenFile?: string }, cmd: Command, role: 'manager' | 'worker'): void {
  if (f.join === undefined || (f.token === undefined && f.tokenFile === undefined) || !isPlainHttp(f.join) || baseUrlProblem(f.join) !== null) return;
  const hostPort = new URL(f.join).host;
  const flag = f.token === undefined ? '--token-file' : '--token';
  const tail = role === 'manager' ? `; an insecure cluster (joined through http://) takes no join token: drop ${flag}` : ' (a worker joins only a secure cluster: an insecure one lists its workers in its config)';
  cmd.error(`error: --join ${f.join} with ${flag}: a join token is sent only over TLS, pinned to the CA it names, never over plain HTTP: give --join https://${hostPort} or ${hostPort}${tail}`);
}

export function buildProgram(runLong: (run: () => Promise<number>) => Promise<void>): Command {
  const program = new Command('minkube')
    .description('A small container orchestrator: Raft-replicated managers that schedule tasks onto workers.')
    .option('--api <url>', `the API of any manager, or a comma-separated list of them tried in turn when one cannot serve (env MINKUBE_API; default: every manager of the credentials file, else ${defaultApi})`, parseApiFlag)
    .option('--json', 'machine-readable output')
    .version(versionText(), '-V, --version', 'print the version of minkube, its commit when known, and its command version')
    .showHelpAfterError('(run with --help for usage)')
    // A command's line in its parent's list shows its own usage: `service create` takes <name> <image> (required,
    // though commander is told they are optional so one message can name all that is missing).
    .configureHelp({ subcommandTerm: (cmd) => `${cmd.name()}${cmd.aliases()[0] === undefined ? '' : `|${cmd.aliases()[0]}`} ${cmd.usage()}`.trimEnd() })
    .exitOverride()
    // An empty required argument (`minkube worker drain ''`, `task get ""`) is bad usage, not a request to send.
    .hook('preAction', (_program, action) => {
      action.registeredArguments.forEach((a, i) => {
        if (a.required && !a.variadic && action.processedArgs[i] === '') action.error(`error: <${a.name()}> must not be empty`);
      });
    });
  const globals = (cmd: Command): { api: string; out: Output } => {
    const o = cmd.optsWithGlobals<GlobalOptions>();
    // Read lazily: `minkube manager` and `--help` must not trip over a bad credentials file.
    const fromEnv = process.env.MINKUBE_API !== undefined && process.env.MINKUBE_API !== '' ? process.env.MINKUBE_API : undefined;
    if (o.api === undefined && fromEnv !== undefined) {
      // The same usage error as a bad --api (exit 2): the variable stands for the flag.
      try {
        parseApiFlag(fromEnv);
      } catch (err) {
        cmd.error(`error: MINKUBE_API=${fromEnv}: ${(err as Error).message}`);
      }
    }
    const api = cliApiUrl(o.api, fromEnv, defaultApi);
    return { api, out: { json: o.json === true } };
  };

  program
    .command('status')
    .description('the members of the cluster: role, term, commit and applied indexes, reachability; * marks the leader')
    .action(async (_opts: object, cmd: Command) => {
      const g = globals(cmd);
      await runStatus(g.api, g.out);
    });

  const kv = program.command('kv').description('read and write the replicated key-value store');
  kv.command('get <key>')
    .description('print the value of a key (linearizable unless --stale)')
    .option('--stale', 'read from the answering manager without confirming it is current')
    .action(async (key: string, opts: { stale?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await runKvGet(g.api, key, opts.stale === true, g.out);
    });
  kv.command('put <key> [value]')
    .description('write a key (without VALUE: the text on standard input, as it is); with --if-version, only if it is at that version (0: only if it does not exist)')
    .option('--if-version <n>', 'the version the key must be at', parseVersion)
    .action(async (key: string, value: string | undefined, opts: { ifVersion?: number }, cmd: Command) => {
      const g = globals(cmd);
      if (value === undefined && process.stdin.isTTY) cmd.error('error: give the VALUE, or pipe it on standard input (minkube kv put KEY < FILE)');
      await runKvPut(g.api, key, value ?? (await readStdinText()), opts.ifVersion, g.out);
    });
  kv.command('del <key>')
    .alias('delete')
    .description('delete a key; with --if-version, only if it is at that version')
    .option('--if-version <n>', 'the version the key must be at', parseVersion)
    .action(async (key: string, opts: { ifVersion?: number }, cmd: Command) => {
      const g = globals(cmd);
      await runKvDelete(g.api, key, opts.ifVersion, g.out);
    });

  addTaskCommands(program, globals);
  addPlacementCommands(program, globals);
  addMemberCommands(program, globals);
  addTokenCommands(program, globals);
  addAuditCommand(program, globals);
  addPrometheusConfigCommand(program);
  addSnapshotCommands(program, globals);
  addGcCommand(program, globals);
  addReloadCommand(program, globals);
  addServiceCommands(program, globals);

  program
    .command('manager')
    .description('run one manager of the cluster config in this process (until SIGINT/SIGTERM)')
    .option('--config <file>', 'the cluster config file (tuning; and the addresses of the managers it lists)')
    .requiredOption('--id <id>', 'which manager this is')
    .option('--join <url>', "join a running cluster through any manager's API: https://HOST:PORT or HOST:PORT with a join token, http://HOST:PORT (no token) for an insecure one (needs a new, empty data directory)")
    .option('--token <token>', 'with --join, in a secure cluster: a join token (minkube token create --role manager)')
    .option('--token-file <file>', 'with --join: read the join token from this file (a --token shows in ps)')
    .option('--raft-address <host:port>', 'this manager\'s Raft address, when the config does not list it')
    .option('--api-address <host:port>', 'this manager\'s API address, when the config does not list it')
    .option('--data-dir <dir>', 'this manager\'s data directory, when the config does not list it')
    .option('--force-new-cluster', "disaster recovery: start as the only member of a new cluster from this manager's data")
    .option('--accept-data-loss', 'with --force-new-cluster: go on from this manager though its storage is damaged (it lost writes it had acknowledged)')
    .action((opts: ManagerFlags, cmd: Command) => {
      refuseJoinTokenInClear(opts, cmd, 'manager');
      return runLong(async () => (await import('./daemons.js')).runManager(opts));
    });

  // --config and --id are checked here rather than as required options: `worker ls` (below) needs neither.
  const worker = program
    .command('worker')
    .description('run one worker of the cluster config in this process (until SIGINT/SIGTERM); `worker ls` lists the workers')
    .option('--config <file>', 'the cluster config file (required unless --join or --data-dir holds a joined worker)')
    .option('--id <id>', 'which worker this is (required)')
    .option('--join <url>', "join a secure cluster through any manager's API (https://HOST:PORT or HOST:PORT), with --token, --api-address and --data-dir")
    .option('--token <token>', 'with --join: a join token (minkube token create --role worker)')
    .option('--token-file <file>', 'with --join: read the join token from this file (a --token shows in ps)')
    .option('--api-address <host:port>', 'where this worker serves (with --join)')
    .option('--data-dir <dir>', 'this worker\'s data directory (with --join; later starts need only --id and --data-dir)')
    .option('--runtime <kind>', 'docker | process | auto (with --join; default auto)')
    .option('--label <k=v>', 'with --join: a label for task constraints (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .action((opts: WorkerFlags, cmd: Command) => {
      if (opts.config === undefined && opts.dataDir === undefined) cmd.error("error: required option '--config <file>' not specified (or --join URL --token T --api-address H:P --data-dir D)");
      if (opts.id === undefined) cmd.error("error: required option '--id <id>' not specified");
      refuseJoinTokenInClear(opts, cmd, 'worker');
      return runLong(async () => (await import('./daemons.js')).runWorker(opts as WorkerFlags & { id: string }));
    });
  worker
    .command('ls')
    .alias('list')
    .description('list the workers: state, address, task count, stats, last heartbeat')
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runWorkerList(g.api, g.out);
    });
  const availabilities = [
    ['drain', 'drain', 'take a worker out of service: nothing new is placed on it, and its tasks are stopped there and placed elsewhere, a service\'s replicas update.parallelism at a time (worker ls shows TASKS 0 once it holds none)'],
    ['pause', 'pause', 'place nothing new on a worker; the tasks on it stay'],
    ['activate', 'active', 'let the leader place tasks on a drained or paused worker again'],
  ] as const;
  for (const [name, availability, description] of availabilities) {
    worker
      .command(`${name} <id>`)
      .description(description)
      .action(async (id: string, _flags: object, cmd: Command) => {
        const g = globals(cmd);
        await runWorkerAvailability(g.api, id, availability, g.out);
      });
  }
  worker
    .command('rm <id>')
    .alias('remove')
    .description("forget a retired worker's record: only one that is down with no task placed on it (a worker that starts again registers again)")
    .action(async (id: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runWorkerRemove(g.api, id, g.out);
    });

  program
    .command('up')
    .description('start every manager (and worker) of a config as child processes; Ctrl-C stops them all')
    .option('--config <file>', 'the cluster config file', 'cluster.example.json')
    .action((opts: { config: string }) => runLong(async () => (await import('./up.js')).runUp({ configPath: opts.config })));

  addHelpCommands(program);
  return program;
}

/**
 * `help [command]` on every command that has subcommands, in place of commander's, which answers an unknown name
 * (`minkube help nosuch`) with the whole help and exit 2 but no word of what was wrong: here it is a usage error that
 * says so, as `minkube nosuch` is.
 */
function addHelpCommands(cmd: Command): void {
  if (cmd.commands.length === 0) return;
  for (const sub of cmd.commands) addHelpCommands(sub);
  cmd.helpCommand(false);
  cmd
    .command('help [command]')
    .usage('[command]')
    .description('display help for command')
    .action((name: string | undefined) => {
      if (name === undefined) cmd.help();
      const sub = cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (sub === undefined || sub.name() === 'help') cmd.error(`error: unknown command '${name}' (${commandPath(cmd)} --help lists them)`);
      sub.help();
    });
}

/** `minkube task`: a command's words from the top. */
function commandPath(cmd: Command): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) words.unshift(c.name());
  return words.join(' ');
}

function addTaskCommands(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  const task = program.command('task').description('run, list, inspect and stop tasks');
  secretEnvOptions(
    task
      .command('run <image> [command...]')
      .description('submit a task (put the command after --); prints its id, or with --wait follows it to its end, or with --follow prints its output')
      .option('--env <KEY=VALUE>', 'an environment variable (repeatable)', parseEnv),
  )
    .option('--restart <policy>', 'never | on-failure | always (default never)', oneOf(restartPolicies))
    .option('--max-attempts <n>', 'attempts before the task fails (default 3)', integerIn(1, limits.taskAttemptsMax))
    .option('--cpus <c>', 'CPU cores reserved on its worker while it runs', amountUpTo(limits.resourceCpusMax))
    .option('--memory-mb <m>', 'MiB reserved on its worker while it runs', amountUpTo(limits.resourceMemoryMbMax))
    .option('--constraint <c>', 'on worker labels: zone==a, disk!=hdd, gpu (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--priority <p>', `${taskPriorities.join(' | ')} (default normal)`, oneOf(taskPriorities))
    .option('--namespace <ns>', 'the namespace whose quota it counts against (default "default")')
    .option('--port <name>', 'a named port (repeatable): the worker passes MINKUBE_PORT_<NAME> (and PORT for the first); task get shows its address', (v: string, all: string[] = []) => [...all, v])
    .option(...stopSignalOption, parseStopSignal)
    .option(...stopTimeoutOption, parseStopTimeout)
    .option('--name <name>', 'a name to show beside the id')
    .option('--wait', 'show progress until the task ends, then its exit code; exit 1 if it did not succeed')
    .option('-f, --follow', "print the task's output as it runs (each attempt's in turn; the id and the end go to stderr), then exit with its exit code (0 if it succeeded, the last attempt's code if it failed or was stopped, 1 if it ended without one)")
    .option('--count <n>', `submit n copies (1..${limits.taskRunCountMax}; --name gets -1..-n); --wait then waits until all have started and exits 1 if any failed`, parseCount)
    .action(async (image: string, command: string[], flags: TaskRunFlags, cmd: Command) => {
      const g = globals(cmd);
      if (flags.follow === true && (flags.wait === true || (flags.count ?? 1) > 1)) cmd.error('error: --follow follows one task: give it without --wait and --count');
      const o = { spec: specFrom(image, command, flags, cmd), wait: flags.wait === true, follow: flags.follow === true };
      const count = flags.count ?? 1;
      await (count === 1 ? runTaskRun(g.api, o, g.out) : runTaskRunMany(g.api, { ...o, count }, g.out));
    });
  task
    .command('ls')
    .alias('list')
    .description('list tasks, oldest first')
    .option('--state <state>', taskStates.join(' | '), oneOf(taskStates))
    .option('--worker <id>', 'only tasks on this worker')
    .option('--name <text>', 'only tasks whose name contains this')
    .option('--limit <n>', 'at most this many (default 100)', parsePositive)
    .option('--cursor <c>', 'the tasks after a page that said "more tasks follow" (the page\'s nextCursor with --json)')
    .action(async (flags: { state?: string; worker?: string; name?: string; limit?: number; cursor?: string }, cmd: Command) => {
      const g = globals(cmd);
      const q: { state?: string; workerId?: string; name?: string; limit: number; cursor?: string } = { limit: flags.limit ?? 100 };
      if (flags.cursor !== undefined) q.cursor = flags.cursor;
      if (flags.state !== undefined) q.state = flags.state;
      if (flags.worker !== undefined) q.workerId = flags.worker;
      if (flags.name !== undefined) q.name = flags.name;
      await runTaskList(g.api, q, g.out);
    });
  task
    .command('get <id>')
    .description('one task: state, worker, attempt, exit code, why it failed, history')
    .action(async (id: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runTaskGet(g.api, id, g.out);
    });
  task
    .command('stop <id>')
    .description('stop a task (its worker stops the container; a pending task stops at once)')
    .action(async (id: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runTaskStop(g.api, id, g.out);
    });
  task
    .command('logs <id>')
    .description("the task's output, from the worker that ran its latest attempt")
    .option('--tail <n>', 'the last n lines (default 1000; 0 with --follow: only what comes next)', parseNonNegative)
    .option('-f, --follow', "then the output as it is written, until the task's container has exited")
    .action(async (id: string, flags: { tail?: number; follow?: boolean }, cmd: Command) => {
      await runTaskLogs(globals(cmd).api, id, flags.tail ?? 1000, flags.follow === true);
    });
}

function addMemberCommands(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  const member = program.command('member').description("list, add and remove the cluster's managers");
  member
    .command('ls')
    .alias('list')
    .description('the managers as the leader sees them: voter or learner, addresses, reachability; * marks the leader')
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runMemberList(g.api, g.out);
    });
  member
    .command('add <id>')
    .description('add a manager as a learner; the leader makes it a voter once it has caught up')
    .requiredOption('--raft-address <host:port>', 'where the other managers reach its Raft transport')
    .requiredOption('--api-address <host:port>', 'where its HTTP API listens')
    .action(async (id: string, flags: { raftAddress: string; apiAddress: string }, cmd: Command) => {
      const g = globals(cmd);
      await runMemberAdd(g.api, { id, raftAddress: flags.raftAddress, apiAddress: flags.apiAddress }, g.out);
    });
  member
    .command('remove <id>')
    .alias('rm')
    .description('remove a manager (the leader hands over first if it is the one removed); prints the new member list')
    .action(async (id: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runMemberRemove(g.api, id, g.out);
    });

  const leader = program.command('leader').description('leadership of the cluster');
  leader
    .command('transfer [id]')
    .description('hand leadership to a voter (by default the most caught-up one) and wait until it leads')
    .action(async (id: string | undefined, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runLeaderTransfer(g.api, id ?? null, g.out);
    });
}

/**
 * Runs the CLI; never throws. `exitNow` is set by the long-running commands (manager, worker, up), whose
 * runtimes may leave timers and sockets behind: the process must end when they are done.
 */
export async function main(argv: readonly string[]): Promise<{ code: number; exitNow: boolean }> {
  const result = { code: 0, exitNow: false };
  const program = buildProgram(async (run) => {
    result.exitNow = true;
    result.code = await run();
  });
  try {
    await program.parseAsync([...argv]);
    return result;
  } catch (err) {
    return failure(err, result.exitNow);
  } finally {
    if (!result.exitNow) await closeCliConnections().catch(() => undefined);
  }
}

function failure(err: unknown, exitNow: boolean): { code: number; exitNow: boolean } {
  if (err instanceof CliExit) return { code: err.exitCode, exitNow };
  if (err instanceof InvalidArgumentError) {
    // A command's own check of an argument (commander prints, then throws a plain CommanderError, only for what its
    // parsers refuse): a usage error all the same.
    process.stderr.write(`error: ${err.message}\n(run with --help for usage)\n`);
    return { code: 2, exitNow };
  }
  if (err instanceof CommanderError) {
    // Commander has printed the usage error (or the help, or the version) already.
    return { code: err.exitCode === 0 ? 0 : 2, exitNow };
  }
  const e = asMinkubeError(err);
  printError(e, failureHints(e));
  return { code: 1, exitNow };
}

// No top-level await: the built command is CommonJS, which bin/minkube.js compiles with V8's code cache.
void main(process.argv).then(({ code, exitNow }) => {
  process.exitCode = code;
  if (exitNow) process.exit();
});
