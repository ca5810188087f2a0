// `task get` shows a task's plain environment (README: the CLI shows a task's environment), escaped as other data is,
// beside the names of its secret environment, whose values it never has.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

let server: Server;
let api = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    const env = req.url === '/v1/tasks/t1' ? { FOO: 'bar', MSG: 'hello world', EVIL: 'x\u001b[2Jy' } : {};
    const spec = { image: 'img', command: ['serve'], env, secretEnv: { DB_PASSWORD: '<redacted>' } };
    const t = { id: req.url?.slice('/v1/tasks/'.length), spec, state: 'running', desiredState: 'run', workerId: 'w1', attempt: 1, term: 1, containerId: 'c1', exitCode: null, error: null, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', history: [] };
    res.end(JSON.stringify(t));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.64.21', () => r()));
  api = `http://127.0.64.21:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it("task get shows the plain env as NAME=VALUE pairs a shell would read back, control characters escaped (outside tester: only --json showed it)", async () => {
  const r = await runCli(['--api', api, 'task', 'get', 't1']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain("env:        FOO=bar 'MSG=hello world' 'EVIL=x\\u001b[2Jy'\n");
  expect(r.stdout).toMatch(/^secret env: DB_PASSWORD$/m);
  // An empty env shows no line.
  const none = await runCli(['--api', api, 'task', 'get', 't2']);
  expect(none.stdout).not.toMatch(/^env:/m);
});
