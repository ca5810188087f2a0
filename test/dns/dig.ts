// `dig` (and unbound, a real resolver) for the DNS tests: run dig against a server, and whether they are installed.
// Without them the tests are skipped locally but fail under CI (CI installs bind9-dnsutils and unbound).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

/** Where unbound is (Debian puts it in /usr/sbin, which a user's PATH may lack), or null. */
export const unboundBinary = ['/usr/sbin/unbound', '/usr/bin/unbound'].find((p) => existsSync(p)) ?? null;

/** it() when the tools are there; else skipped, or failing under CI. */
function itWith(missing: string | null, name: string, fn: () => Promise<void>, timeoutMs: number): void {
  if (missing === null) it(name, fn, timeoutMs);
  else if (process.env.CI !== undefined && process.env.CI !== '') it(name, () => { throw new Error(`CI is set but ${missing} is not installed`); });
  else it.skip(`${name} (${missing} is not installed)`, fn);
}

/** it() when dig is there; else skipped, or failing under CI. */
export function itDig(name: string, fn: () => Promise<void>, timeoutMs = 60_000): void {
  itWith(digInstalled ? null : 'dig (Debian: bind9-dnsutils)', name, fn, timeoutMs);
}

/** it() when dig and unbound are there; else skipped, or failing under CI. */
export function itDigUnbound(name: string, fn: () => Promise<void>, timeoutMs = 60_000): void {
  itWith(!digInstalled ? 'dig (Debian: bind9-dnsutils)' : unboundBinary === null ? 'unbound (Debian: unbound)' : null, name, fn, timeoutMs);
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
