// Debian's prometheus and promtool for the metrics tests: describeWith runs its tests when the binary is there,
// skips them when it is not, and fails each of them when CI is set (a CI without it must not pass silently).
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { beforeEach, describe } from 'vitest';

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

export function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}
