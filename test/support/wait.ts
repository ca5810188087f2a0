// The one set of waiting helpers for tests and benchmarks: sleep, waitFor (poll a check until it holds), eventually
// (poll an async value, riding out errors) and free loopback ports. A test that checks that something did not happen
// waits on an event or a status with these, not on a fixed sleep.
import { createServer, type Server } from 'node:net';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value other than undefined/false (that value), or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  intervalMs = 5,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Polls fn until it returns a non-undefined value, or throws after timeoutMs (with fn's last error, if any). */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(50);
  }
  const why = lastError instanceof Error ? `: ${lastError.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
}

/** Ports free right now on `host`, all different (the OS picks them; a tiny race with other processes remains). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  // The kernel may hand the same ephemeral port out again once it is released, so a port this process has already
  // handed out is never handed out twice (two sequential freePort() calls once gave a worker and a manager one port).
  for (let round = 0; ports.length < n; round++) {
    if (round > 20) throw new Error(`freePorts: could not find ${n} distinct free ports on ${host}`);
    const servers = await Promise.all(
      Array.from({ length: n - ports.length }, () => new Promise<Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen({ host, port: 0 }, () => resolve(s));
      })),
    );
    for (const s of servers) {
      const port = (s.address() as { port: number }).port;
      if (!handedOutPorts.has(port)) {
        handedOutPorts.add(port);
        ports.push(port);
      }
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
  return ports;
}

/** Every port freePorts has returned in this process. */
const handedOutPorts = new Set<number>();

/**
 * A free TCP port on host within [min, max], as freePort finds one elsewhere: for tests that keep to a range of
 * their own on a machine other tests share.
 */
export async function freePortIn(host: string, min: number, max: number): Promise<number> {
  const span = max - min + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = min + ((start + i) % span);
    if (handedOutPorts.has(port)) continue;
    const bound = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ host, port }, () => s.close(() => resolve(true)));
    });
    if (bound) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error(`freePortIn: no free port on ${host} in ${min}..${max}`);
}

/** A free TCP port on host (bound and released; a tiny race is acceptable in tests). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port!;
}
