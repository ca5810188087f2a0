// `task run`, `service create` and `service update` with --stop-signal and --stop-timeout: the spec's stopSignal and
// stopTimeoutS sent as given (to a stand-in API that records the bodies), shown by `task get`, and a bad value a usage
// error (exit 2).
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitCommandLine } from '../../src/cli/services.js';
import { runCli } from '../support/cli.js';

const bodies: { method: string; url: string; body: Record<string, unknown> }[] = [];
let server: Server;
let api = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => {
      bodies.push({ method: req.method ?? '', url: req.url ?? '', body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v1/tasks/t1') {
        const spec = { image: 'img', command: ['serve'], stopSignal: 'SIGINT', stopTimeoutS: 30, restartPolicy: 'never', maxAttempts: 3, ports: [{ name: 'web' }, { name: 'admin' }] };
        const ports = [{ name: 'web', hostPort: 29590, address: '127.0.29.5:29590' }];
        const t = { id: 't1', spec, state: 'running', desiredState: 'run', workerId: 'w1', attempt: 1, term: 1, containerId: 'c1', exitCode: null, error: null, ports, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', history: [] };
        res.end(JSON.stringify(t));
        return;
      }
      if (req.url === '/v1/tasks') {
        res.statusCode = 201;
        res.end(JSON.stringify({ id: 't1', state: 'pending' }));
        return;
      }
      const service = { name: 'web', replicas: { desired: 1, running: 0, healthy: 0 }, version: 1, spec: { image: 'img', command: ['serve'] }, rollout: { state: 'stable' }, tasks: [] };
      res.statusCode = req.method === 'POST' ? 201 : 200;
      res.end(JSON.stringify(service));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('--stop-signal and --stop-timeout', () => {
  it('task run sends them in the spec', async () => {
    const r = await runCli(['--api', api, 'task', 'run', 'img', '--stop-signal', 'SIGINT', '--stop-timeout', '30', '--', 'serve']);
    expect(r.code, r.stderr).toBe(0);
    expect(bodies.at(-1)).toMatchObject({ method: 'POST', url: '/v1/tasks', body: { image: 'img', command: ['serve'], stopSignal: 'SIGINT', stopTimeoutS: 30 } });
  });

  it('task get shows them', async () => {
    const r = await runCli(['--api', api, 'task', 'get', 't1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^stop: {7}SIGINT, then SIGKILL after 30 s$/m);
    // Declared ports, each with its address once the worker gave one.
    expect(r.stdout).toMatch(/^ports: {6}web=127\.0\.29\.5:29590 admin=-$/m);
  });

  it('task run --port declares named ports', async () => {
    const r = await runCli(['--api', api, 'task', 'run', 'img', '--port', 'web', '--port', 'admin', '--', 'serve']);
    expect(r.code, r.stderr).toBe(0);
    expect(bodies.at(-1)).toMatchObject({ method: 'POST', url: '/v1/tasks', body: { image: 'img', ports: [{ name: 'web' }, { name: 'admin' }] } });
  });

  it('service create and update send them in the task', async () => {
    const created = await runCli(['--api', api, 'service', 'create', 'web', 'img', '--replicas', '1', '--stop-signal', 'SIGQUIT', '--stop-timeout', '0', '--', 'serve']);
    expect(created.code, created.stderr).toBe(0);
    expect(bodies.at(-1)).toMatchObject({ method: 'POST', url: '/v1/services', body: { name: 'web', task: { image: 'img', stopSignal: 'SIGQUIT', stopTimeoutS: 0 } } });
    const updated = await runCli(['--api', api, 'service', 'update', 'web', '--stop-timeout', '60']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(bodies.at(-1)).toMatchObject({ method: 'PATCH', url: '/v1/services/web', body: { task: { image: 'img', command: ['serve'], stopTimeoutS: 60 } } });
  });

  it.each([
    [['--stop-signal', 'SIGSTOP'], /--stop-signal.*expected one of SIGTERM/],
    [['--stop-timeout', '3601'], /--stop-timeout.*expected an integer from 0 to 3600/],
    [['--stop-timeout', '1.5'], /--stop-timeout.*expected an integer from 0 to 3600/],
  ])('%j is a usage error', async (flags, message) => {
    const before = bodies.length;
    const r = await runCli(['--api', api, 'task', 'run', 'img', ...flags, '--', 'serve']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(bodies.length).toBe(before);
  });
});

describe('--health-exec', () => {
  it('splits its command as a shell would: quotes keep spaces, $NAME stays as written', async () => {
    const r = await runCli(['--api', api, 'service', 'create', 'web', 'img', '--replicas', '1', '--health-exec', `sh -c "test -n \\"$HOME\\" && echo 'ok'"`, '--', 'serve']);
    expect(r.code, r.stderr).toBe(0);
    expect(bodies.at(-1)).toMatchObject({ method: 'POST', url: '/v1/services', body: { healthCheck: { type: 'exec', command: ['sh', '-c', `test -n "$HOME" && echo 'ok'`] } } });
  });

  it('a quote left open is a usage error that says where, and nothing is sent', async () => {
    const before = bodies.length;
    const r = await runCli(['--api', api, 'service', 'create', 'web', 'img', '--replicas', '1', '--health-exec', 'sh -c "test -f /x', '--', 'serve']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: --health-exec: the double quote at character 7 is not closed');
    expect(bodies.length).toBe(before);
  });

  it.each([
    ['test -f /tmp/ready', ['test', '-f', '/tmp/ready']],
    ['  spaced   out  ', ['spaced', 'out']],
    [`'single $X' "dbl \\$X" a\\ b`, ['single $X', 'dbl $X', 'a b']],
    [`pre"fix b"'c d'`, ['prefix bc d']],
    [`""`, ['']],
    ['', []],
  ])('%j -> %j', (line, words) => {
    expect(splitCommandLine(line)).toEqual(words);
  });
});
