// `minkube audit` as a child process against a manager app over a fake AuditService: the table, --json, the flags
// as query parameters (a duration ago becomes an ISO time), the next page named on stderr, usage errors (exit 2).
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { AuditLine, AuditQuery, AuditRefusedLine, AuditServedLine, AuditService, Page } from '../../src/contracts/services.js';
import { parseSince } from '../../src/cli/audit.js';
import { FakeManagerService } from '../api/fake-service.js';
import { runCli, type CliResult } from '../support/cli.js';

class FakeAudit implements AuditService {
  readonly queries: AuditQuery[] = [];
  page: Page<AuditLine> = { items: [], nextCursor: null };

  refused(_line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {}

  served(_line: Omit<AuditServedLine, 'seq' | 'time'>): void {}

  rateLimited(_client: string, _line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {}

  async query(q: AuditQuery): Promise<Page<AuditLine>> {
    this.queries.push(q);
    return this.page;
  }
}

const audit = new FakeAudit();
const app: FastifyInstance = buildManagerApp({ service: new FakeManagerService(), audit });
let api: string;

function cli(args: string[]): Promise<CliResult> {
  return runCli(['--api', api, ...args]);
}

beforeAll(async () => {
  api = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => app.close());
beforeEach(() => {
  audit.queries.length = 0;
  audit.page = { items: [], nextCursor: null };
});

describe('minkube audit', () => {
  it('names the manager whose trail it shows when the first of a list did not answer', async () => {
    const down = 'http://127.0.0.1:1';
    const r = await runCli(['--api', `${down},${api}`, 'audit']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`the audit trail of ${api} (the first manager named did not answer)\n`);
    expect((await runCli(['--api', `${api},${down}`, 'audit'])).stderr).toBe('');
  });

  it('prints committed changes, leadership transfers and reloads, and refusals as one table; --json prints the page', async () => {
    audit.page = {
      items: [
        { seq: 1, time: '2030-01-01T00:00:00.000Z', index: 12, principal: { token: '0123456789abcdef', role: 'admin' }, op: 'put', target: 'app/k', outcome: 'ok', requestId: 'r1' },
        { seq: 2, time: '2030-01-01T00:00:01.000Z', principal: null, route: 'POST /v1/tasks', outcome: 'UNAUTHENTICATED', requestId: 'r2' },
        { seq: 3, time: '2030-01-01T00:00:02.000Z', index: 13, principal: { node: 'w1', role: 'worker' }, op: 'worker.heartbeat', target: 'w1', outcome: 'ok', requestId: null },
        {
          seq: 4, time: '2030-01-01T00:00:03.000Z', principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 2933,
          since: '2030-01-01T00:00:02.004Z', routes: { 'GET /v1/kv/*': 2900, 'POST /v1/auth/login': 33 },
        },
        { seq: 5, time: '2030-01-01T00:00:04.000Z', principal: { token: '0123456789abcdef', role: 'admin' }, route: 'POST /v1/cluster/leader', target: 'm2', outcome: 'ok', requestId: 'r5' },
        { seq: 6, time: '2030-01-01T00:00:05.000Z', principal: null, route: 'SIGHUP', target: 'log.level', outcome: 'ok', requestId: null },
      ],
      nextCursor: null,
    };
    const [plain, json] = await Promise.all([cli(['audit']), cli(['--json', 'audit'])]);
    expect(plain.code).toBe(0);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+PRINCIPAL\s+OP\/ROUTE\s+TARGET\s+OUTCOME\s+REQUEST$/);
    expect(lines[1]).toMatch(/^2030-01-01T00:00:00\.000Z\s+0123456789abcdef \(admin\)\s+put\s+app\/k\s+ok\s+r1$/);
    expect(lines[2]).toMatch(/^2030-01-01T00:00:01\.000Z\s+-\s+POST \/v1\/tasks\s+-\s+UNAUTHENTICATED\s+r2$/);
    expect(lines[3]).toMatch(/^2030-01-01T00:00:02\.000Z\s+node w1 \(worker\)\s+worker\.heartbeat\s+w1\s+ok\s+-$/);
    // A summary of refusals past an address's anonymous bucket: its routes, its client, how many and since when.
    expect(lines[4]).toMatch(/^2030-01-01T00:00:03\.000Z\s+-\s+GET \/v1\/kv\/\*,POST \/v1\/auth\/login\s+10\.0\.0\.7\s+RATE_LIMITED x2933 since 2030-01-01T00:00:02\.004Z\s+-$/);
    // A leadership transfer and a reload by signal: the manager's own lines, with their targets.
    expect(lines[5]).toMatch(/^2030-01-01T00:00:04\.000Z\s+0123456789abcdef \(admin\)\s+POST \/v1\/cluster\/leader\s+m2\s+ok\s+r5$/);
    expect(lines[6]).toMatch(/^2030-01-01T00:00:05\.000Z\s+-\s+SIGHUP\s+log\.level\s+ok\s+-$/);
    expect(plain.stderr).toBe('');
    expect(JSON.parse(json.stdout)).toEqual(audit.page);
  });

  it('sends its flags as the query, and names the next page on stderr', async () => {
    audit.page = { items: [], nextCursor: '40' };
    const before = Date.now();
    const r = await cli(['audit', '--since', '10m', '--principal', 'w1', '--limit', '20', '--cursor', '7']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('more lines follow: add --cursor 40\n');
    const q = audit.queries[0]!;
    expect(q).toMatchObject({ principal: 'w1', limit: 20, afterSeq: 7, excludeOps: ['worker.heartbeat'] });
    // Ten minutes before the command ran.
    expect(q.sinceMs).toBeGreaterThanOrEqual(before - 600_000);
    expect(q.sinceMs).toBeLessThanOrEqual(Date.now() - 600_000);
  });

  it('leaves out worker.heartbeat lines unless --heartbeats (outside tester: one per worker per second buried the rest)', async () => {
    audit.page = { items: [], nextCursor: null };
    expect((await cli(['audit'])).code).toBe(0);
    expect((await cli(['audit', '--heartbeats'])).code).toBe(0);
    expect(audit.queries.slice(-2).map((q) => q.excludeOps)).toEqual([['worker.heartbeat'], undefined]);
  });

  it('a bad --since or --limit is a usage error (exit 2) that says what is expected', async () => {
    const [since, limit] = await Promise.all([cli(['audit', '--since', 'yesterday']), cli(['audit', '--limit', '5000'])]);
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/--since.*expected a duration ago/);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toMatch(/--limit.*from 1 to 1000/);
    expect(audit.queries).toEqual([]);
  });
});

describe('parseSince', () => {
  it('turns a duration into the time that long ago, and normalises an ISO time', () => {
    const now = Date.parse('2030-01-01T12:00:00Z');
    expect(parseSince('30s', now)).toBe('2030-01-01T11:59:30.000Z');
    expect(parseSince('2h', now)).toBe('2030-01-01T10:00:00.000Z');
    expect(parseSince('7d', now)).toBe('2029-12-25T12:00:00.000Z');
    expect(parseSince('2030-01-01T13:00:00+01:00', now)).toBe('2030-01-01T12:00:00.000Z');
  });
});
