// A manager at its file descriptor limit (lowered with prlimit under the running process, as an operator or a
// tester would): it says so at warn naming the limit, a new request is answered (in an idle connection's place) or
// refused at once, never left hanging, and Raft and storage keep working: no new term, writes commit. Linux with
// util-linux's prlimit only.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdsReserved } from '../../src/lib/fds.js';
import { limits } from '../../src/lib/limits.js';
import { eventually, ProcCluster } from '../support/cluster.js';
import { sleep, waitFor } from '../support/wait.js';

/** Under CI (Linux, util-linux installed) a missing prlimit fails the test rather than skip it. */
function hasPrlimit(): boolean {
  if (process.env.CI !== undefined && process.env.CI !== '') return true;
  if (process.platform !== 'linux') return false;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), '--nofile'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The soft descriptor limit of a process (its hard limit is left alone, so the soft one can be given back). */
function setSoftFdLimit(pid: number, soft: number): void {
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
}

function softFdLimit(pid: number): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!;
  return Number(line.slice('Max open files'.length).trim().split(/\s+/)[0]);
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The descriptor the process would be given next: the kernel hands out the lowest free one, and refuses it at the limit. */
function lowestFreeFd(pid: number): number {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let fd = 0;
  while (used.has(fd)) fd++;
  return fd;
}

/** One request on a connection of its own: the answer, or how it failed (a client timeout is a hang). */
type Outcome = { status: number; body: string } | { failed: string };

function ask(host: string, port: number, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request({ host, port, method, path, agent: false, timeout: timeoutMs, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ failed: e.code ?? e.message }));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ failed: 'client timeout' });
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ failed: e.code ?? e.message }));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Connections that send nothing, as a flood of idle clients; counts those the server closed. */
class IdleConnections {
  readonly sockets: Socket[] = [];
  closedByServer = 0;

  open(host: string, port: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const s = connect({ host, port });
      s.on('error', () => undefined);
      s.once('close', () => {
        if (!ours.has(s)) this.closedByServer++;
      });
      this.sockets.push(s);
    }
  }

  /** Connections not closed (by either end). */
  get held(): number {
    return this.sockets.filter((s) => !s.destroyed).length;
  }

  destroyAll(): void {
    for (const s of this.sockets.splice(0)) {
      ours.add(s);
      s.destroy();
    }
  }
}
const ours = new WeakSet<Socket>();

interface WarnLine {
  fdLimit: number;
  fdsReserved: number;
  processOut: boolean;
  msg: string;
}

function fdWarnings(logPath: string): WarnLine[] {
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes('out of file descriptors'))
    .map((l) => JSON.parse(l) as WarnLine & { level: number })
    .filter((l) => l.level === 40);
}

/** A manager process as the tests press it: where it listens, its pid, its limit and descriptors before any test. */
interface Pressed {
  id: string;
  host: string;
  port: number;
  pid: number;
  limitAtStart: number;
  fdsAtStart: number;
  logPath: string;
}

describe.skipIf(!hasPrlimit())('a manager out of file descriptors', () => {
  let cluster: ProcCluster;
  let leader: string;
  const idle = new IdleConnections();

  beforeAll(async () => {
    cluster = await ProcCluster.create({ managers: 3, hostPrefix: '127.0.64.' });
    cluster.startAll();
    leader = await cluster.waitForLeader();
  });

  afterAll(async () => {
    idle.destroyAll();
    await cluster?.cleanup();
  });

  function press(id: string): Pressed {
    const url = new URL(cluster.url(id));
    const pid = cluster.node(id).proc!.pid!;
    return { id, host: url.hostname, port: Number(url.port), pid, limitAtStart: softFdLimit(pid), fdsAtStart: openFds(pid), logPath: join(cluster.dir, `${id}.log`) };
  }

  async function term(): Promise<number> {
    const r = await cluster.http(leader, 'GET', '/v1/cluster');
    expect(r.status).toBe(200);
    return r.body.term as number;
  }

  /** Asks until a request is answered 200; every attempt must end by itself (answered or refused), none hang. */
  async function served(m: Pressed, method: string, path: string, body?: unknown): Promise<void> {
    const outcomes: Outcome[] = [];
    await waitFor(
      `${method} ${path} answered 200 by ${m.id}`,
      async () => {
        const o = await ask(m.host, m.port, method, path, body);
        outcomes.push(o);
        return 'status' in o && o.status === 200;
      },
      30_000,
      100,
    );
    expect(outcomes.filter((o) => 'failed' in o && o.failed === 'client timeout')).toEqual([]);
  }

  it("keeps its reserve for Raft and storage, answers new requests in idle connections' place, and warns naming the limit", async () => {
    const m = press(leader);
    const termBefore = await term();
    const limit = m.fdsAtStart + 48;
    setSoftFdLimit(m.pid, limit);
    try {
      // Read when scraped: the new limit at once.
      await eventually(
        async () => {
          const r = await ask(m.host, m.port, 'GET', '/metrics');
          return 'status' in r && new RegExp(`^process_max_fds ${limit}$`, 'm').test(r.body) ? true : undefined;
        },
        20_000,
        'process_max_fds to show the lowered limit',
      );

      // The manager reads the limit again once a second: given two, the flood below meets its reserve; should it come
      // first, the manager runs out and gives its idle connections back, which must serve as well.
      await sleep(2 * limits.fdCheckIntervalMs);
      // More idle connections than the limit allows descriptors.
      idle.open(m.host, m.port, limit);
      const warning = await waitFor('a warning naming the limit', () => fdWarnings(m.logPath).find((w) => w.fdLimit === limit), 20_000, 50);
      expect(warning.fdsReserved).toBe(fdsReserved(limit));
      expect(warning.msg).toContain(`limit ${limit}`);

      // While they are held: a write is answered (it commits through Raft and the leader's storage), and so is a read.
      await served(m, 'PUT', '/v1/kv/fds', { value: 'held' });
      await served(m, 'GET', '/v1/kv/fds');
      // The manager did not keep them all: it closed some (refused, or in a newer one's place).
      await waitFor('idle connections closed by the manager', () => idle.closedByServer > 0, 20_000, 50);

      // Once they are gone (the manager sees them close, and can open descriptors again within a look of its own).
      idle.destroyAll();
      await served(m, 'PUT', '/v1/kv/fds', { value: 'after' });
      expect(await term()).toBe(termBefore);
      expect(await cluster.waitForLeader()).toBe(leader);
    } finally {
      setSoftFdLimit(m.pid, m.limitAtStart);
    }
  });

  it('lowered under what it holds, gives back its idle connections, serves again, and says it is out', async () => {
    // A follower: its warnings are its own (the leader's may have just said it was out, and says so once every 5 s).
    const m = press(cluster.managerIds.find((id) => id !== leader)!);
    const termBefore = await term();
    const held = idle.closedByServer;
    await waitFor(
      'the idle connections to be held',
      () => {
        if (idle.held < 40) idle.open(m.host, m.port, 40 - idle.held);
        return openFds(m.pid) >= m.fdsAtStart + 40;
      },
      20_000,
      100,
    );
    // Idle long enough to be given back (not only to make way for a new connection, one at a time).
    await sleep(2 * limits.httpEvictableIdleMsMin);
    // Under the descriptors it holds (the newest of them the idle connections), every one below the limit in use: the
    // manager can open nothing until it gives some back.
    const limit = lowestFreeFd(m.pid) - 10;
    setSoftFdLimit(m.pid, limit);
    try {
      await waitFor('a warning that the manager is out of descriptors', () => fdWarnings(m.logPath).find((w) => w.fdLimit === limit && w.processOut), 20_000, 50);
      await served(m, 'PUT', '/v1/kv/fds', { value: 'out' });
      await waitFor('idle connections given back by the manager', () => idle.closedByServer > held, 20_000, 50);
      idle.destroyAll();
      await served(m, 'GET', '/v1/kv/fds');
      expect(await term()).toBe(termBefore);
    } finally {
      setSoftFdLimit(m.pid, m.limitAtStart);
    }
  });
});
