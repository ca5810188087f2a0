// Debian's prometheus and promtool for the metrics tests: describeWith runs its tests when the binary is there,
// skips them when it is not, and fails each of them when CI is set (a CI without it must not pass silently).
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { beforeEach, describe } from 'vitest';
import { minkubeBin, repoRoot } from '../support/cluster.js';

export const prometheusBin = process.env.MINKUBE_PROMETHEUS ?? '/usr/bin/prometheus';
export const promtoolBin = process.env.MINKUBE_PROMTOOL ?? '/usr/bin/promtool';

export function describeWith(binary: string, name: string, fn: () => void): void {
  if (existsSync(binary)) describe(name, fn);
  else if (process.env.CI !== undefined && process.env.CI !== '') {
    describe(name, () => {
      // beforeEach, not beforeAll: a failing beforeAll only skips the tests; this fails each of them.
      beforeEach(() => {
        throw new Error(`CI is set but ${binary} is missing: install Debian's prometheus package`);
      });
      fn();
    });
  } else describe.skipIf(true)(`${name} (${binary} is missing)`, fn);
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: readonly string[], timeoutMs = 120_000, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { timeout: timeoutMs, env }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

/**
 * `minkube ARGS` as runCli runs it (no credentials file, no MINKUBE_API), with a longer timeout: on a loaded machine
 * loading the config schema alone has taken 15 s.
 */
export function minkube(args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, MINKUBE_CONFIG: join(repoRoot, '.tmp', 'no-such-credentials.json') };
  delete env.MINKUBE_API;
  return run(process.execPath, [minkubeBin, ...args], timeoutMs, env);
}
