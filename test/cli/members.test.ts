// `minkube member ls|add|remove` and `minkube leader transfer` as child processes against a manager app over fake
// services: tables and --json, failures as "error: CODE: message" (exit 1), usage errors (exit 2), read retries.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { defaultView, FakeManagerService, FakeMembershipService } from '../api/fake-service.js';
import { runCli, type CliResult } from '../support/cli.js';

const membership = new FakeMembershipService();
const app: FastifyInstance = buildManagerApp({ service: new FakeManagerService(), membership });
let api: string;

function cli(args: string[]): Promise<CliResult> {
  return runCli(['--api', api, ...args]);
}

function expectCleanError(r: CliResult, code: string, message: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).toMatch(new RegExp(`^error: ${code}: `));
  expect(r.stderr).toMatch(message);
}

beforeAll(async () => {
  api = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => app.close());
beforeEach(() => {
  membership.members = defaultView().members.map((m) => ({ ...m }));
  membership.members.push({ id: 'm3', raftAddress: '127.0.0.3:7003', apiAddress: '127.0.0.3:8003', voter: false, reachable: true });
  membership.leaderId = 'm1';
  membership.term = 3;
  membership.calls.length = 0;
  membership.failNext = null;
});

const table = [
  /^ID\s+ROLE\s+LEADER\s+RAFT\s+API\s+REACHABLE$/,
  /^m1\s+voter\s+\*\s+127\.0\.0\.1:7001\s+127\.0\.0\.1:8001\s+yes$/,
  /^m2\s+voter\s+127\.0\.0\.2:7002\s+127\.0\.0\.2:8002\s+no$/,
  /^m3\s+learner\s+127\.0\.0\.3:7003\s+127\.0\.0\.3:8003\s+yes$/,
];

describe('minkube member ls', () => {
  it('prints a table (the leader marked) and with --json the answer as it came', async () => {
    const [plain, json] = await Promise.all([cli(['member', 'ls']), cli(['--json', 'member', 'list'])]);
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(0);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(table.length);
    table.forEach((re, i) => expect(lines[i]).toMatch(re));
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ leaderId: 'm1', members: membership.members });
  });

  it('is retried on a passing failure (NO_LEADER), and says when no leader is known', async () => {
    membership.failNext = new MinkubeError('NO_LEADER', 'no leader yet');
    membership.leaderId = null;
    const r = await cli(['member', 'ls']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('leader: none known');
    expect(r.stdout).not.toContain('*');
    expect(membership.calls.map((c) => c.method)).toEqual(['listMembers', 'listMembers']);
  });
});

describe('minkube member add', () => {
  it('adds a learner; adding it again says it is already a member; --json prints the member', async () => {
    const args = ['member', 'add', 'm4', '--raft-address', '127.0.0.4:7004', '--api-address', '127.0.0.4:8004'];
    const added = await cli(args);
    expect(added).toEqual({
      code: 0,
      stdout: 'added m4 as a learner: raft 127.0.0.4:7004, api 127.0.0.4:8004; the leader makes it a voter once it has caught up\n',
      stderr: '',
    });
    expect(membership.calls[0]!.args).toEqual([{ id: 'm4', raftAddress: '127.0.0.4:7004', apiAddress: '127.0.0.4:8004' }]);
    const [again, json] = await Promise.all([cli(args), cli(['--json', ...args])]);
    expect(again).toEqual({ code: 0, stdout: 'm4 is already a member (learner): raft 127.0.0.4:7004, api 127.0.0.4:8004\n', stderr: '' });
    expect(JSON.parse(json.stdout)).toEqual({ id: 'm4', raftAddress: '127.0.0.4:7004', apiAddress: '127.0.0.4:8004', voter: false, reachable: true });
  });

  it('a bad address: INVALID_MEMBER naming the field, exit 1; a refusal is not retried', async () => {
    const [bad, refused] = await Promise.all([
      cli(['member', 'add', 'm4', '--raft-address', '127.0.0.4', '--api-address', '127.0.0.4:8004']),
      cli(['member', 'add', 'm2', '--raft-address', '127.0.0.9:7009', '--api-address', '127.0.0.9:8009']),
    ]);
    expectCleanError(bad, 'INVALID_MEMBER', /body\.raftAddress: expected host:port/);
    expectCleanError(refused, 'MEMBERSHIP_CHANGE_REFUSED', /other addresses/);
    expect(membership.calls.map((c) => c.method)).toEqual(['addMember']);
  });

  it("a worker's id: JOIN_REFUSED naming the worker, exit 1, not retried", async () => {
    membership.failNext = new MinkubeError('JOIN_REFUSED', 'w1 is a worker of this cluster (registered, ready); a manager needs an id of its own');
    const r = await cli(['member', 'add', 'w1', '--raft-address', '127.0.63.99:21009', '--api-address', '127.0.63.99:22009']);
    expectCleanError(r, 'JOIN_REFUSED', /^error: JOIN_REFUSED: w1 is a worker of this cluster \(registered, ready\)/);
    expect(membership.calls.map((c) => c.method)).toEqual(['addMember']);
  });
});

describe('minkube member remove', () => {
  it('removes a member and prints the new list; rm and --json', async () => {
    const r = await cli(['member', 'remove', 'm3']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('removed m3');
    expect(lines).toHaveLength(4);
    table.slice(0, 3).forEach((re, i) => expect(lines[i + 1]).toMatch(re));
    const json = await cli(['--json', 'member', 'rm', 'm2']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ leaderId: 'm1', members: [defaultView().members[0]] });
  });

  it('an unknown member: MEMBER_NOT_FOUND, exit 1; a passing failure is not retried', async () => {
    expectCleanError(await cli(['member', 'rm', 'm9']), 'MEMBER_NOT_FOUND', /"m9"/);
    membership.failNext = new MinkubeError('NO_LEADER', 'no leader yet');
    expectCleanError(await cli(['member', 'rm', 'm3']), 'NO_LEADER', /no leader yet/);
    expect(membership.calls.map((c) => c.method)).toEqual(['removeMember', 'removeMember']);
  });
});

describe('minkube leader transfer', () => {
  it('to any voter, to a named one, and --json', async () => {
    expect(await cli(['leader', 'transfer'])).toEqual({ code: 0, stdout: 'leader is now m2 (term 4)\n', stderr: '' });
    expect(await cli(['leader', 'transfer', 'm1'])).toEqual({ code: 0, stdout: 'leader is now m1 (term 5)\n', stderr: '' });
    const json = await cli(['--json', 'leader', 'transfer', 'm2']);
    expect(JSON.parse(json.stdout)).toEqual({ leaderId: 'm2', term: 6 });
    expect(membership.calls.map((c) => c.args)).toEqual([[null], ['m1'], ['m2']]);
  });

  it('to a learner: LEADER_TRANSFER_FAILED, exit 1', async () => {
    expectCleanError(await cli(['leader', 'transfer', 'm3']), 'LEADER_TRANSFER_FAILED', /learner/);
  });
});

describe('usage errors exit 2', () => {
  it('missing options and arguments, unknown subcommands', async () => {
    const [noAddress, noId, tooMany, unknown] = await Promise.all([
      cli(['member', 'add', 'm4', '--raft-address', '127.0.0.4:7004']),
      cli(['member', 'rm']),
      cli(['leader', 'transfer', 'm1', 'm2']),
      cli(['member', 'promote', 'm3']),
    ]);
    expect([noAddress.code, noAddress.stderr]).toEqual([2, expect.stringMatching(/required option '--api-address <host:port>' not specified/)]);
    expect([noId.code, noId.stderr]).toEqual([2, expect.stringMatching(/missing required argument 'id'/)]);
    expect([tooMany.code, tooMany.stderr]).toEqual([2, expect.stringMatching(/too many arguments/)]);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringMatching(/unknown command 'promote'/)]);
    expect(membership.calls).toEqual([]);
  });
});
