// `dig` for the DNS tests: run it against a server, and whether it is installed. Without it the dig tests are
// skipped locally but fail under CI (CI installs bind9-dnsutils).
import { execFile, execFileSync } from 'node:child_process';
import { it } from 'vitest';

function installed(): boolean {
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const digInstalled = installed();

/** it() when dig is there; else skipped, or failing under CI. */
export function itDig(name: string, fn: () => Promise<void>, timeoutMs = 60_000): void {
  if (digInstalled) it(name, fn, timeoutMs);
  else if (process.env.CI !== undefined && process.env.CI !== '') it(name, () => { throw new Error('CI is set but dig is not installed (Debian: bind9-dnsutils)'); });
  else it.skip(`${name} (dig is not installed)`, fn);
}

/** Runs `dig @host -p port ARGS +time=2 +tries=2` and answers its stdout. */
export function dig(host: string, port: number, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${host}`, '-p', String(port), '+time=2', '+tries=2', ...args], { timeout: 20_000 }, (err: Error | null, stdout: string) => {
      if (err !== null && stdout === '') reject(err);
      else resolve(stdout);
    });
  });
}

/** The status word of a full dig answer (NOERROR, NXDOMAIN, REFUSED...). */
export function digStatus(out: string): string {
  return /status: ([A-Z]+)/.exec(out)?.[1] ?? `(no status in: ${out})`;
}

/** `dig +short` lines. */
export function lines(out: string): string[] {
  return out.trim().split('\n').filter((l) => l !== '').sort();
}
