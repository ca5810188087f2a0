// A joining manager reads what its --join URL answers, which may be anything: an answer that is not a member is
// said as one, naming the URL and what was wrong, rather than crashing on a missing field or counting as added.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memberViewProblem, membersViewProblem } from '../../src/contracts/services.js';
import { askToJoin } from '../../src/manager/join.js';
import { rejection } from '../support/errors.js';

const self = { id: 'm4', raftAddress: '127.0.62.7:7004', apiAddress: '127.0.62.7:8004', dataDir: './m4' };
let answer: unknown = null;
let posts = 0;
const server = createServer((req, res) => {
  req.resume();
  posts++;
  res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
});
let url = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.62.7', r));
  url = `http://127.0.62.7:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('askToJoin', () => {
  it('an answer to POST /v1/cluster/members that is no member is UNREACHABLE naming the URL and the field, asked once', async () => {
    for (const [body, problem] of [
      [null, ': expected an object'],
      [{ ca: 'x' }, '.id: missing'],
      [{ id: 'm4', raftAddress: self.raftAddress, apiAddress: self.apiAddress, voter: 'no' }, '.voter: expected true or false'],
    ] as const) {
      answer = body;
      posts = 0;
      const e = await rejection(askToJoin(url, self, pino({ level: 'silent' })));
      expect(e).toMatchObject({ code: 'UNREACHABLE', message: `POST ${url}/v1/cluster/members did not answer as a Minkube manager's API does (the member added${problem}): is --join ${url} a manager of the cluster?` });
      expect(posts).toBe(1);
    }
  });

  it("a manager's answer is taken", async () => {
    answer = { id: 'm4', raftAddress: self.raftAddress, apiAddress: self.apiAddress, voter: false, reachable: true };
    await askToJoin(url, self, pino({ level: 'silent' }));
  });
});

describe('membersViewProblem', () => {
  it('names the first field a joining manager could not use', () => {
    const m = { id: 'm1', raftAddress: 'h:1', apiAddress: 'h:2', voter: true, reachable: true };
    expect(membersViewProblem({ leaderId: 'm1', members: [m] })).toBeNull();
    expect(membersViewProblem([])).toBe('expected an object');
    expect(membersViewProblem({ ca: '...' })).toBe('members: missing');
    expect(membersViewProblem({ members: {} })).toBe('members: expected a list');
    expect(membersViewProblem({ members: [m, { ...m, raftAddress: '' }] })).toBe('members[1].raftAddress: expected a non-empty string');
    expect(memberViewProblem({ ...m, voter: undefined })).toBe('.voter: missing');
  });
});
