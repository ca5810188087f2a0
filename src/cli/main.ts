// The `minkube` command line. Exit codes: 0 success, 1 a failure (printed as "error: CODE: message"), 2 bad usage.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { runKvDelete, runKvGet, runKvPut } from './kv.js';
import { printError, type Output } from './output.js';
import { runStatus } from './status.js';

const defaultApi = 'http://127.0.0.1:8001';
// The long-running commands are imported when used: the config schema (TypeBox) alone takes a second to load.

interface GlobalOptions {
  api: string;
  json?: boolean;
}

function parseVersion(text: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new InvalidArgumentError('expected an integer >= 0.');
  return Number(text);
}

export function buildProgram(runLong: (run: () => Promise<number>) => Promise<void>): Command {
  const program = new Command('minkube')
    .description('A small container orchestrator: Raft-replicated managers that schedule tasks onto workers.')
    .option('--api <url>', 'the API of any manager (env MINKUBE_API)', process.env.MINKUBE_API ?? defaultApi)
    .option('--json', 'machine-readable output')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const globals = (cmd: Command): { api: string; out: Output } => {
    const o = cmd.optsWithGlobals<GlobalOptions>();
    return { api: o.api, out: { json: o.json === true } };
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
  kv.command('put <key> <value>')
    .description('write a key; with --if-version, only if it is at that version (0: only if it does not exist)')
    .option('--if-version <n>', 'the version the key must be at', parseVersion)
    .action(async (key: string, value: string, opts: { ifVersion?: number }, cmd: Command) => {
      const g = globals(cmd);
      await runKvPut(g.api, key, value, opts.ifVersion, g.out);
    });
  kv.command('del <key>')
    .alias('delete')
    .description('delete a key; with --if-version, only if it is at that version')
    .option('--if-version <n>', 'the version the key must be at', parseVersion)
    .action(async (key: string, opts: { ifVersion?: number }, cmd: Command) => {
      const g = globals(cmd);
      await runKvDelete(g.api, key, opts.ifVersion, g.out);
    });

  program
    .command('manager')
    .description('run one manager of the cluster config in this process (until SIGINT/SIGTERM)')
    .requiredOption('--config <file>', 'the cluster config file')
    .requiredOption('--id <id>', 'which manager of the config this is')
    .action((opts: { config: string; id: string }) => runLong(async () => (await import('./daemons.js')).runManager(opts.config, opts.id)));

  program
    .command('worker')
    .description('run one worker of the cluster config in this process (until SIGINT/SIGTERM)')
    .requiredOption('--config <file>', 'the cluster config file')
    .requiredOption('--id <id>', 'which worker of the config this is')
    .action((opts: { config: string; id: string }) => runLong(async () => (await import('./daemons.js')).runWorker(opts.config, opts.id)));

  program
    .command('up')
    .description('start every manager (and worker) of a config as child processes; Ctrl-C stops them all')
    .option('--config <file>', 'the cluster config file', 'cluster.example.json')
    .action((opts: { config: string }) => runLong(async () => (await import('./up.js')).runUp({ configPath: opts.config })));

  return program;
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
    if (err instanceof CommanderError) {
      // Commander has printed the usage error (or the help, or the version) already.
      return { code: err.exitCode === 0 ? 0 : 2, exitNow: result.exitNow };
    }
    printError(err);
    return { code: 1, exitNow: result.exitNow };
  }
}

const { code, exitNow } = await main(process.argv);
process.exitCode = code;
if (exitNow) process.exit();
