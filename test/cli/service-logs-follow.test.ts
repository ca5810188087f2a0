// `minkube service logs -f` as a child process against scripted managers (node:http): a replica's stream cut part-way
// (its manager killed, its worker away) is followed again, through another manager of the --api list or once the
// worker answers, from where it was cut (no line twice, none lost); a replica that appears during the follow is shown
// from its first line, whatever --tail says.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startCli } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

interface Replica {
  taskId: string;
  workerId: string;
  attempt?: number;
  state?: string;
}

/** A scripted manager: the service's replicas (null: removed), and each follow of a replica's output. */
interface Script {
  replicas(): Replica[] | null;
  follow(taskId: string, tailLines: number, res: ServerResponse): void;
}

interface Scripted {
  url: string;
  /** Cuts every open connection and stops listening: a manager killed. */
  kill(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  })));
});

async function manager(host: string, script: Script): Promise<Scripted> {
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/v1/services/lg') {
      const replicas = script.replicas();
      if (replicas === null) return json(404, { error: { code: 'SERVICE_NOT_FOUND', message: 'no service lg' } });
      const tasks = replicas.map((r) => ({ version: 1, state: 'running', desiredState: 'run', health: null, attempt: 1, ports: [], failure: null, ...r }));
      const n = tasks.length;
      return json(200, { name: 'lg', replicas: { desired: n, running: n, healthy: n }, version: 1, rollout: { state: 'stable' }, spec: { image: 'x' }, tasks });
    }
    const logs = /^\/v1\/tasks\/([^/]+)\/logs$/.exec(url.pathname);
    if (req.method === 'GET' && logs !== null && url.searchParams.get('follow') === 'true') {
      return script.follow(logs[1]!, Number(url.searchParams.get('tail')), res);
    }
    json(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return {
    url: `http://${host}:${(server.address() as { port: number }).port}`,
    kill: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    }),
  };
}

/** A replica's output: the lines its runtime keeps, served as a tail (the last N), then those written later. */
class Output {
  readonly lines: string[] = [];
  private readonly readers = new Set<ServerResponse>();
  /** Streams served so far. */
  opened = 0;

  constructor(count: number, readonly word = 'tick') {
    for (let i = 0; i < count; i++) this.write();
  }

  write(): void {
    const line = `${this.word} ${this.lines.length + 1}\n`;
    this.lines.push(line);
    for (const res of this.readers) res.write(line);
  }

  serve(tailLines: number, res: ServerResponse): void {
    this.opened++;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.write(tailLines === 0 ? '' : this.lines.slice(-tailLines).join(''));
    this.readers.add(res);
    res.on('close', () => this.readers.delete(res));
  }

  /** The manager's relay is cut part-way: the connection goes without the answer's end. */
  cut(): void {
    for (const res of this.readers) res.socket?.destroy();
    this.readers.clear();
  }

  /** The container exited: every stream ends. */
  end(): void {
    for (const res of this.readers) res.end();
    this.readers.clear();
  }
}

const lineCount = (text: string, line: string): number => text.split('\n').filter((l) => l === line).length;

describe('service logs -f', () => {
  it('a stream cut as its manager is killed is followed again through the next manager, from where it was cut', async () => {
    const out = new Output(3);
    let removed = false;
    const replicas = (): Replica[] | null => (removed ? null : [{ taskId: 't1', workerId: 'w1' }]);
    const first = await manager('127.0.64.1', { replicas, follow: (_id, tail, res) => out.serve(tail, res) });
    const tails: number[] = [];
    const second = await manager('127.0.64.2', {
      replicas,
      follow: (_id, tail, res) => {
        tails.push(tail);
        out.serve(tail, res);
      },
    });
    const following = startCli(['--api', `${first.url},${second.url}`, 'service', 'logs', 'lg', '-f']);
    await waitFor('the first lines', () => following.stdoutSoFar().includes('t1@w1 | tick 3\n'), 20_000, 50);
    await first.kill();
    // Written while no stream was open: shown once the stream is picked up again.
    out.write();
    out.write();
    await waitFor('the stream opened again through the second manager', () => out.opened === 2, 20_000, 50);
    out.write();
    await waitFor('the lines after the cut', () => following.stdoutSoFar().includes('t1@w1 | tick 6\n'), 20_000, 50);
    removed = true;
    out.end();
    const r = await following.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(out.lines.map((l) => `t1@w1 | ${l}`).join(''));
    // Asked for all the runtime keeps: the lines already shown are skipped.
    expect(tails).toEqual([100_000]);
    expect(r.stderr).toMatch(/^t1: UNREACHABLE: .*cut off part-way.*; following it again\nt1: followed again\n$/);
  }, 40_000);

  it('a stream cut while its worker is away is followed again once the worker answers, every line once', async () => {
    const out = new Output(2);
    const other = new Output(1, 'other');
    let removed = false;
    let away = 0;
    let refused = 0;
    const m = await manager('127.0.64.3', {
      replicas: () => (removed ? null : [{ taskId: 't1', workerId: 'w1' }, { taskId: 't2', workerId: 'w2' }]),
      follow: (id, tail, res) => {
        if (id === 't2') return other.serve(tail, res);
        if (away > 0) {
          away--;
          refused++;
          return void res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'WORKER_UNAVAILABLE', message: 'worker w1 did not answer' } }));
        }
        out.serve(tail, res);
      },
    });
    const following = startCli(['--api', m.url, 'service', 'logs', 'lg', '-f', '--tail', '1']);
    await waitFor('the first lines', () => following.stdoutSoFar().includes('t1@w1 | tick 2\n'), 20_000, 50);
    // The worker goes away (the relay is cut), writes on, and is refused a few times before it is back.
    away = 4;
    out.cut();
    out.write();
    await waitFor('the worker asked for again while away', () => refused === 4, 30_000, 50);
    out.write();
    await waitFor('the lines after the cut', () => following.stdoutSoFar().includes('t1@w1 | tick 4\n'), 30_000, 50);
    out.write();
    await waitFor('a line after the stream was placed', () => following.stdoutSoFar().includes('t1@w1 | tick 5\n'), 20_000, 50);
    removed = true;
    out.end();
    other.end();
    const r = await following.done;
    expect(r.code, r.stderr).toBe(0);
    // --tail 1: tick 2 at first; then every line once, in order.
    const mine = r.stdout.split('\n').filter((l) => l.startsWith('t1@w1 | '));
    expect(mine).toEqual(['tick 2', 'tick 3', 'tick 4', 'tick 5'].map((l) => `t1@w1 | ${l}`));
    expect(lineCount(r.stdout, 't2@w2 | other 1')).toBe(1);
    // The cut said once, the failed reopens once more (they fail otherwise), and the stream's return.
    expect(r.stderr).toMatch(/^t1: UNREACHABLE: .*cut off part-way.*; following it again\n(t1: WORKER_UNAVAILABLE: worker w1 did not answer.*; following it again\n)?t1: followed again\n$/);
  }, 60_000);

  it('--tail bounds what was there when the follow started: a replica that appears later is shown from its first line', async () => {
    const old = new Output(5, 'old');
    const added = new Output(3, 'new');
    let looks = 0;
    let removed = false;
    const tails = new Map<string, number>();
    const m = await manager('127.0.64.4', {
      replicas: () => {
        looks++;
        if (removed) return null;
        return looks === 1 ? [{ taskId: 't1', workerId: 'w1' }] : [{ taskId: 't1', workerId: 'w1' }, { taskId: 't2', workerId: 'w2' }];
      },
      follow: (id, tail, res) => {
        tails.set(id, tail);
        (id === 't1' ? old : added).serve(tail, res);
      },
    });
    const following = startCli(['--api', m.url, 'service', 'logs', 'lg', '-f', '--tail', '2']);
    await waitFor('the new replica followed', () => following.stdoutSoFar().includes('t2@w2 | new 3\n'), 20_000, 50);
    removed = true;
    old.end();
    added.end();
    const r = await following.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('t1@'))).toEqual(['t1@w1 | old 4', 't1@w1 | old 5']);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('t2@'))).toEqual(['t2@w2 | new 1', 't2@w2 | new 2', 't2@w2 | new 3']);
    expect(tails.get('t1')).toBe(2);
    expect(tails.get('t2')).toBe(100_000);
  }, 40_000);
});
