// Runs the `minkube` command as a child process, the way a user would, and collects its exit code and output.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { minkubeBin, repoRoot } from './cluster.js';

const noCredentialsPath = join(repoRoot, '.tmp', 'no-such-credentials.json');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * MINKUBE_API is cleared unless `env` sets it, so the caller's environment cannot pick the manager; likewise
 * MINKUBE_CONFIG points at no file unless `env` names one, so a credentials file in the home directory is not used.
 */
export function runCli(args: readonly string[], env: Readonly<Record<string, string>> = {}, cwd = repoRoot, input: string | Uint8Array = ''): Promise<CliResult> {
  return startCli(args, env, cwd, input).done;
}

/** A command still running (`--follow`): what it has printed so far, and its result once it ends. */
export interface RunningCli {
  readonly done: Promise<CliResult>;
  stdoutSoFar(): string;
}

/** runCli, for a command that keeps running: a test waits on what it has printed instead of sleeping. */
export function startCli(args: readonly string[], env: Readonly<Record<string, string>> = {}, cwd = repoRoot, input: string | Uint8Array = ''): RunningCli {
  let printed = '';
  const done = new Promise<CliResult>((done) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (env.MINKUBE_API === undefined) delete childEnv.MINKUBE_API;
    if (env.MINKUBE_CONFIG === undefined) childEnv.MINKUBE_CONFIG = noCredentialsPath;
    const child = execFile(process.execPath, [minkubeBin, ...args], { cwd, env: childEnv, timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
    child.stdout?.on('data', (chunk: Buffer | string) => {
      printed += chunk.toString();
    });
    // Standard input is a pipe: what the command reads there (`kv put KEY < FILE`), then its end.
    child.stdin?.end(input);
  });
  return { done, stdoutSoFar: () => printed };
}
