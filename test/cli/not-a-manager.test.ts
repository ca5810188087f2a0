// The CLI reads a 2xx answer only once it is what the route answers: a server at --api that is no Minkube manager
// (it answers every path `200 {}`, or 200 with a page of HTML) makes a command fail, UNREACHABLE naming the URL and
// the first field missing, exit 1, nothing on stdout; never a write that looks done, never INTERNAL.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { freePortIn } from '../support/wait.js';

const host = '127.0.66.50';
const requests: string[] = [];

async function serverAnswering(body: string, contentType: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(200, { 'content-type': contentType }).end(body);
  });
  const port = await freePortIn(host, 20000, 29999);
  await new Promise<void>((r) => server.listen(port, host, r));
  return { server, url: `http://${host}:${port}` };
}

let empty: { server: Server; url: string };
let html: { server: Server; url: string };
beforeAll(async () => {
  empty = await serverAnswering('{}', 'application/json');
  html = await serverAnswering('<html>hello</html>', 'text/html');
});
afterAll(async () => {
  for (const s of [empty.server, html.server]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const notAManager = (method: string, url: string, problem: string): string => `error: UNREACHABLE: ${method} ${url} did not answer as a Minkube manager's API does (${problem})\n`;

describe('a server that answers every path 200 {}', () => {
  const cases: [string[], string, string, string][] = [
    [['kv', 'get', 'greeting'], 'GET', '/v1/kv/greeting', 'key: missing'],
    [['kv', 'put', 'a', 'b'], 'PUT', '/v1/kv/a', 'key: missing'],
    [['kv', 'del', 'a'], 'DELETE', '/v1/kv/a', 'key: missing'],
    [['task', 'run', 'busybox', '--', 'echo'], 'POST', '/v1/tasks', 'id: missing'],
    [['task', 'run', 'busybox', '--count', '2', '--', 'echo'], 'POST', '/v1/tasks/batch', 'items: missing'],
    [['task', 'get', 't1'], 'GET', '/v1/tasks/t1', 'id: missing'],
    [['task', 'ls'], 'GET', '/v1/tasks?limit=100', 'items: missing'],
    [['status'], 'GET', '/v1/cluster', 'id: missing'],
    [['member', 'ls'], 'GET', '/v1/cluster/members', 'leaderId: missing'],
    [['worker', 'ls'], 'GET', '/v1/workers?limit=1000', 'items: missing'],
    [['token', 'ls'], 'GET', '/v1/auth/tokens', 'items: missing'],
    [['service', 'ls'], 'GET', '/v1/services?limit=1000', 'items: missing'],
    [['service', 'get', 'web'], 'GET', '/v1/services/web', 'name: missing'],
  ];
  for (const [args, method, path, problem] of cases) {
    it(`${args.join(' ')}: exit 1 naming ${method} ${path} and ${problem}, nothing on stdout`, async () => {
      const r = await runCli(['--api', empty.url, ...args]);
      expect(r.stderr).toBe(notAManager(method, `${empty.url}${path}`, problem));
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    });
  }

  it('a write is sent once and not to the next manager of --api: something took it', async () => {
    requests.length = 0;
    const r = await runCli(['--api', `${empty.url},${html.url}`, 'kv', 'put', 'a', 'b']);
    expect(r.stderr).toBe(notAManager('PUT', `${empty.url}/v1/kv/a`, 'key: missing'));
    expect(r.code).toBe(1);
    expect(requests).toEqual(['PUT /v1/kv/a']);
  });

  it('a read moves on to the next manager of --api, and is not asked again after a pause', async () => {
    requests.length = 0;
    const r = await runCli(['--api', `${empty.url},${html.url}`, 'kv', 'get', 'greeting']);
    expect(r.stderr).toBe(`error: UNREACHABLE: GET ${html.url}/v1/kv/greeting did not answer as a Minkube manager's API does (not JSON) (also tried ${empty.url}: UNREACHABLE)\n`);
    expect(r.code).toBe(1);
    expect(requests).toEqual(['GET /v1/kv/greeting', 'GET /v1/kv/greeting']);
  });
});

describe('a server that answers every path 200 with a body that is not JSON', () => {
  for (const [args, method, path] of [
    [['kv', 'get', 'greeting'], 'GET', '/v1/kv/greeting'],
    [['kv', 'put', 'a', 'b'], 'PUT', '/v1/kv/a'],
    [['task', 'get', 't1'], 'GET', '/v1/tasks/t1'],
    [['status'], 'GET', '/v1/cluster'],
    [['member', 'ls'], 'GET', '/v1/cluster/members'],
  ] as const) {
    it(`${args.join(' ')}: exit 1 naming ${method} ${path}, not JSON`, async () => {
      const r = await runCli(['--api', html.url, ...args]);
      expect(r.stderr).toBe(notAManager(method, `${html.url}${path}`, 'not JSON'));
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    });
  }
});

// Outside tester, with `python3 -m http.server` at --api: status said INVALID_BODY (HTTP 404), kv put INTERNAL (HTTP 501).
describe('a plain web server that answers 404 to GET and 501 to anything else, with no Minkube error body', () => {
  const webHost = '127.0.63.50';
  let web: { server: Server; url: string };
  const seen: string[] = [];
  beforeAll(async () => {
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      if (req.method === 'GET') res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>File not found</body></html>');
      else res.writeHead(501, { 'content-type': 'text/html' }).end('<html><body>Unsupported method</body></html>');
    });
    const port = await freePortIn(webHost, 20000, 29999);
    await new Promise<void>((r) => server.listen(port, webHost, r));
    web = { server, url: `http://${webHost}:${port}` };
  });
  afterAll(async () => {
    web.server.closeAllConnections();
    await new Promise((r) => web.server.close(r));
  });

  for (const [args, method, path, status] of [
    [['status'], 'GET', '/v1/cluster', 404],
    [['kv', 'get', 'greeting'], 'GET', '/v1/kv/greeting', 404],
    [['kv', 'put', 'a', 'b'], 'PUT', '/v1/kv/a', 501],
    [['task', 'stop', 't1'], 'DELETE', '/v1/tasks/t1', 501],
  ] as const) {
    it(`${args.join(' ')}: UNREACHABLE naming ${method} ${path} and HTTP ${status}, exit 1, a read not asked again`, async () => {
      seen.length = 0;
      const r = await runCli(['--api', web.url, ...args]);
      expect(r.stderr).toBe(notAManager(method, `${web.url}${path}`, `HTTP ${status}, with no Minkube error in its body`));
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      expect(seen).toEqual([`${method} ${path}`]);
    });
  }
});
