// Hot reload on a running cluster (real processes, TLS and tokens on): after the config file changes, SIGHUP to a
// manager applies the new log level and a role's rate limit at once and names the change that needs a restart (in
// the log, and in POST /v1/admin/reload's answer, which only an admin may call); SIGHUP to a worker applies its log
// level; a file that no longer parses changes nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { eventually, ProcCluster } from '../support/cluster.js';

let c: ProcCluster;
let leader: string;

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function logLines(id: string): LogLine[] {
  return readFileSync(join(c.dir, `${id}.log`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

function writeConfig(change: (config: Record<string, unknown>) => void): void {
  const config = structuredClone(c.config);
  change(config);
  writeFileSync(c.configPath, JSON.stringify(config, null, 2));
}

beforeAll(async () => {
  c = await ProcCluster.create({
    managers: 1,
    workers: 1,
    workerRuntime: 'process',
    secure: true,
    extra: { log: { level: 'info' }, api: { rateLimits: { viewer: { requestsPerS: 1000, burst: 1000 } } } },
  });
  c.startAll();
  leader = await c.waitForLeader({ timeoutMs: 150_000 });
  await eventually(async () => ((await c.http(leader, 'GET', '/v1/workers')).body?.items?.length === 1 ? true : undefined), 30_000, 'the worker registered');
}, 240_000);

afterAll(async () => {
  await c?.cleanup();
});

describe('hot reload (real processes)', () => {
  it('SIGHUP applies the log level and a rate limit, and names the change that needs a restart', async () => {
    const created = await c.http(leader, 'POST', '/v1/auth/tokens', { name: 'viewer-1', role: 'viewer' });
    expect(created.status).toBe(201);
    const viewer = { token: created.body.token as string };
    const burst = await Promise.all(Array.from({ length: 20 }, () => c.http(leader, 'GET', '/v1/cluster', undefined, 5000, viewer)));
    expect(burst.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(logLines(leader).filter((l) => l.level < 30)).toEqual([]);

    writeConfig((config) => {
      config.log = { level: 'debug' };
      config.api = { rateLimits: { viewer: { requestsPerS: 1, burst: 2 } } };
      config.raft = { electionTimeoutMs: 1000 };
    });
    await c.signal(leader, 'SIGHUP');
    const reloaded = await eventually(async () => logLines(leader).find((l) => l.msg.startsWith('config reload')), 20_000, 'the reload line');
    expect(reloaded).toMatchObject({ level: 40, msg: expect.stringContaining('raft.electionTimeoutMs') as string, refused: [{ key: 'raft.electionTimeoutMs', reason: expect.stringContaining('restart') as string }] });
    expect((reloaded.applied as { key: string }[]).map((a) => a.key)).toEqual(['api.rateLimits.viewer', 'log.level']);

    // The new limit: 2 at once, then 1 a second.
    const limited = await Promise.all(Array.from({ length: 6 }, () => c.http(leader, 'GET', '/v1/cluster', undefined, 5000, viewer)));
    expect(limited.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(3);
    expect(limited.find((r) => r.status === 429)!.body.error).toMatchObject({ code: 'RATE_LIMITED', message: expect.stringContaining('at most 1/s, 2 at once') as string });
    // The new level: the requests above are logged at debug now.
    await eventually(async () => (logLines(leader).some((l) => l.level === 20 && l.msg === 'request') ? true : undefined), 10_000, 'a debug line');
    // The process did not die of the signal.
    expect(c.node(leader).proc).not.toBeNull();
  });

  it('POST /v1/admin/reload answers what it applied, refused and ignored; admins only', async () => {
    const r = await c.http(leader, 'POST', '/v1/admin/reload');
    expect(r.status).toBe(200);
    // Already applied by the signal; the Raft timing still waits for a restart.
    expect(r.body).toEqual({ node: leader, applied: [], refused: [{ key: 'raft.electionTimeoutMs', reason: expect.any(String) as string }], ignored: [] });
    writeConfig((config) => {
      config.log = { level: 'warn' };
      config.api = { rateLimits: { viewer: { requestsPerS: 1, burst: 2 } } };
      config.raft = { electionTimeoutMs: 1000 };
      config.tasks = { assignTimeoutMs: 7000, retention: { finishedMax: 5 } };
    });
    const again = await c.http(leader, 'POST', '/v1/admin/reload');
    expect(again.body.applied).toEqual([
      { key: 'log.level', from: 'debug', to: 'warn' },
      { key: 'tasks.retention.finishedMax', from: 10_000, to: 5 },
      { key: 'tasks.assignTimeoutMs', from: 10_000, to: 7000 },
    ]);
    // The CLI asks the same of the manager behind --api, with the credentials the cluster left beside its config.
    const cli = await runCli(['--api', c.url(leader), 'reload'], { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json') });
    // A refused key is a failure of the command (after the table): the file and what runs differ.
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(new RegExp(`${leader}: 0 applied, 1 refused[^\\n]*\\nKEY +RESULT +DETAIL\\nraft\\.electionTimeoutMs +refused +Raft timings`));
    expect(cli.stderr).toBe(`error: 1 changed key was refused; ${leader} keeps running with its old value\n`);
    const operator = await c.http(leader, 'POST', '/v1/auth/tokens', { name: 'op-1', role: 'operator' });
    const refused = await c.http(leader, 'POST', '/v1/admin/reload', undefined, 5000, { token: operator.body.token as string });
    expect([refused.status, refused.body.error.code]).toEqual([403, 'FORBIDDEN']);
    expect((await c.http(leader, 'POST', '/v1/admin/reload', undefined, 5000, { token: null })).status).toBe(401);
  });

  it('a file that does not parse changes nothing, and says why', async () => {
    writeFileSync(c.configPath, '{ "managers": ');
    const r = await c.http(leader, 'POST', '/v1/admin/reload');
    expect([r.status, r.body.error.code]).toEqual([400, 'CONFIG_INVALID']);
    // By signal: the log line says the parser's complaint once.
    writeFileSync(c.configPath, '{ "managers": [ broken');
    await c.signal(leader, 'SIGHUP');
    const failed = await eventually(async () => logLines(leader).find((l) => l.msg.startsWith('config reload failed') && String((l.err as { message?: string }).message).includes('broken')), 20_000, 'the failed reload line');
    const message = (failed.err as { message: string }).message;
    expect(message).toMatch(/^the cluster config .* is not valid JSON: Unexpected token/);
    expect(message.match(/Unexpected token/g)).toHaveLength(1);
  });

  it('SIGHUP to a worker applies its log level', async () => {
    writeConfig((config) => {
      config.log = { level: 'debug' };
      config.raft = { electionTimeoutMs: 1000 };
    });
    await c.signal('w1', 'SIGHUP');
    const line = await eventually(async () => logLines('w1').find((l) => l.msg.startsWith('config reload')), 20_000, 'the worker reload line');
    expect(line).toMatchObject({ level: 30, applied: [{ key: 'log.level', from: 'info', to: 'debug' }], ignored: ['raft.electionTimeoutMs'] });
    expect(c.node('w1').proc).not.toBeNull();
  });
});
