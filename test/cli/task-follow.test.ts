// `minkube task run -f` as a child process against a scripted manager (node:http): a followed stream cut part-way
// (its worker died) is followed on to the task's next attempt, and the command exits with the task's exit code,
// a stopped task's too.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

interface Script {
  /** The task record's changing part, given how many log follows were asked and records read since. */
  record(follows: number, readsSinceFollow: number): { state: string; attempt: number; workerId: string | null; exitCode: number | null; history?: unknown[] } | null;
  /** Answers the nth follow (from 1). */
  follow(n: number, res: ServerResponse): void;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function manager(script: Script): Promise<string> {
  let follows = 0;
  let reads = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'POST' && req.url === '/v1/tasks') return json(201, { id: 't1', state: 'pending' });
    if (req.method === 'GET' && req.url?.startsWith('/v1/tasks/t1/logs') === true) {
      follows++;
      reads = 0;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return script.follow(follows, res);
    }
    if (req.method === 'GET' && req.url === '/v1/tasks/t1') {
      const r = script.record(follows, ++reads);
      if (r === null) return json(404, { error: { code: 'TASK_NOT_FOUND', message: 'no task t1' } });
      return json(200, { id: 't1', spec: { image: 'x' }, desiredState: 'run', containerId: null, error: null, history: [], createdAt: '1970-01-01T00:00:00.000Z', updatedAt: '1970-01-01T00:00:00.000Z', ...r });
    }
    json(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('task run -f', () => {
  it('a stream cut part-way is said on stderr, and the task\'s next attempt is followed to its end', async () => {
    const retried = [
      { state: 'running', attempt: 1, atMs: 1, workerId: 'w1', reason: 'running on w1' },
      { state: 'lost', attempt: 1, atMs: 2, workerId: 'w1', reason: 'its worker w1 stopped answering' },
      { state: 'pending', attempt: 2, atMs: 3, workerId: null, reason: 'its worker w1 was lost; retrying (attempt 2 of 3)' },
    ];
    const api = await manager({
      record: (follows, reads) => {
        if (follows === 0) return { state: 'running', attempt: 1, workerId: 'w1', exitCode: null };
        if (follows === 1) {
          // The worker is not judged lost at once; then the task waits for its next attempt.
          if (reads <= 2) return { state: 'running', attempt: 1, workerId: 'w1', exitCode: null };
          if (reads <= 4) return { state: 'pending', attempt: 2, workerId: null, exitCode: null };
          return { state: 'running', attempt: 2, workerId: 'w2', exitCode: null, history: retried };
        }
        return { state: 'succeeded', attempt: 2, workerId: 'w2', exitCode: 0, history: [...retried, { state: 'succeeded', attempt: 2, atMs: 4, workerId: 'w2', reason: 'exited with code 0' }] };
      },
      follow: (n, res) => {
        if (n === 1) {
          res.write('one\n');
          // The manager's upstream (the worker) died: the connection goes without the answer's end.
          setTimeout(() => res.socket?.destroy(), 100);
          return;
        }
        res.end('two\n');
      },
    });
    const r = await runCli(['--api', api, 'task', 'run', '-f', 'x', '--', 'true']);
    expect(r.stdout).toBe('one\ntwo\n');
    expect(r.stderr).toMatch(/^task t1 submitted\ntask t1: the output of attempt 1 ended early \(.*cut off part-way.*\); following the task\ntask t1: attempt 1 ended: its worker w1 was lost; retrying \(attempt 2 of 3\)\ntask t1: attempt 2 on w2\ntask t1: attempt 2 succeeded: exited with code 0\n$/);
    expect(r.code).toBe(0);
  });

  it('a task whose record retention removed as it ended says so, not a bare TASK_NOT_FOUND', async () => {
    const api = await manager({
      record: (follows) => (follows === 0 ? { state: 'running', attempt: 1, workerId: 'w1', exitCode: null } : null),
      follow: (_n, res) => res.end('hi\n'),
    });
    const r = await runCli(['--api', api, 'task', 'run', '-f', 'x', '--', 'true']);
    expect(r).toMatchObject({ code: 1, stdout: 'hi\n' });
    expect(r.stderr).toContain('error: TASK_NOT_FOUND: task t1 ended and tasks.retention removed its record before its outcome could be read: its exit code is unknown');
  });

  it('a stopped task exits with its exit code (137: killed), as docker run does; one without a code exits 1', async () => {
    const stopped = await manager({
      record: () => ({ state: 'stopped', attempt: 1, workerId: 'w1', exitCode: 137 }),
      follow: (_n, res) => res.end('bye\n'),
    });
    const r = await runCli(['--api', stopped, 'task', 'run', '-f', 'x', '--', 'true']);
    expect(r).toEqual({ code: 137, stdout: 'bye\n', stderr: 'task t1 submitted\nerror: task t1 was stopped\n' });
    const never = await manager({
      record: () => ({ state: 'stopped', attempt: 1, workerId: null, exitCode: null }),
      follow: (_n, res) => res.end(),
    });
    expect((await runCli(['--api', never, 'task', 'run', '-f', 'x', '--', 'true'])).code).toBe(1);
  });
});

describe('task logs -f', () => {
  it('of a task not started yet says once on stderr that it waits for it to start, then follows its output (outside tester: it waited in silence)', async () => {
    const api = await manager({
      record: (follows) => ({ state: follows === 0 ? 'pending' : 'running', attempt: 1, workerId: follows === 0 ? null : 'w1', exitCode: null }),
      follow: (_n, res) => res.end('hi\n'),
    });
    expect(await runCli(['--api', api, 'task', 'logs', '-f', 't1'])).toEqual({ code: 0, stdout: 'hi\n', stderr: 'task t1 has not started yet (pending): waiting for it to start\n' });
    // A running task's follow says nothing of the kind.
    const running = await manager({ record: () => ({ state: 'running', attempt: 1, workerId: 'w1', exitCode: null }), follow: (_n, res) => res.end('hi\n') });
    expect(await runCli(['--api', running, 'task', 'logs', '-f', 't1'])).toEqual({ code: 0, stdout: 'hi\n', stderr: '' });
  });
});
