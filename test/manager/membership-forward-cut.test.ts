// A follower passes a membership request on to the leader's API. When that connection breaks after the request was
// sent (the leader killed mid-request, outside tester: 2 of 7 runs applied the removal), the change may have been
// made: the follower must answer 504 TIMEOUT, its outcome unknown, never 503 (README, Errors: "a 503 means the
// request was not applied"), and say it forwarded to the leader, a URL the caller never used. Fake leaders are raw
// sockets on 127.0.64.1 (ports 20000-29999); the follower's driver is a stub that knows the leader m1.
import { createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transportError } from '../../src/client/http.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId, term } from '../../src/lib/ids.js';
import { forwardFailure, MembershipServiceImpl } from '../../src/manager/membership.js';
import type { RaftNodeDriver } from '../../src/manager/node.js';
import type { RaftStatus } from '../../src/raft/types.js';
import { rejection } from '../support/errors.js';
import { freePortIn, sleep } from '../support/wait.js';

const host = '127.0.64.1';
const servers: Server[] = [];
/** What each fake leader received before it cut the connection. */
const received: string[] = [];

/** A leader that reads the request's head, then destroys the connection without answering. */
async function cuttingLeader(): Promise<string> {
  const server = createServer((socket: Socket) => {
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      received.push(head.split('\r\n')[0]!);
      socket.destroy();
    });
    socket.on('error', () => undefined);
  });
  return listenOn(server);
}

/** A port that refuses connections: bound once, then closed. */
async function refusingPort(): Promise<string> {
  const port = await freePortIn(host, 20000, 29999);
  return `${host}:${port}`;
}

async function listenOn(server: Server): Promise<string> {
  const port = await freePortIn(host, 20000, 29999);
  await new Promise<void>((resolve) => server.listen({ host, port }, resolve));
  servers.push(server);
  return `${host}:${port}`;
}

let cutting: string;
let refusing: string;

beforeAll(async () => {
  cutting = await cuttingLeader();
  refusing = await refusingPort();
});
afterAll(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

/** m2, a follower that knows the leader m1 at `leaderApi`. */
function follower(leaderApi: string): MembershipServiceImpl {
  const driver = {
    id: nodeId('m2'),
    directory: { get: () => ({ raftAddress: '', apiAddress: leaderApi }), set: () => undefined },
    status: (): Partial<RaftStatus> => ({ id: nodeId('m2'), role: 'follower', leaderId: nodeId('m1'), voters: [], learners: [], term: term(7) }),
    notMemberError: () => null,
    noLeaderError: () => new MinkubeError('NO_LEADER'),
    whenChanged: (ms: number) => sleep(Math.min(ms, 5)),
  };
  return new MembershipServiceImpl({
    driver: () => driver as unknown as RaftNodeDriver<unknown>,
    reachable: () => true,
    logger: pino({ level: 'silent' }),
    electionTimeoutMs: 100,
    worker: () => undefined,
    settings: () => ({}),
  });
}

const deadline = (ms: number) => ({ requestId: 'fwd', deadlineMs: performance.now() + ms });

describe('a follower whose forward to the leader is cut', () => {
  it('answers 504 TIMEOUT, outcome unknown, naming the leader, when the leader read the request and closed the connection', async () => {
    const err = await rejection(follower(cutting).removeMember('m9', deadline(5_000)));
    expect(received.at(-1)).toBe('DELETE /v1/cluster/members/m9 HTTP/1.1');
    expect([err.code, err.status]).toEqual(['TIMEOUT', 504]);
    expect(err.message).toBe(`this manager forwarded the request to the leader m1 (http://${cutting}), which closed the connection before answering (other side closed); the outcome is unknown`);
    // The other writes alike.
    const add = await rejection(follower(cutting).addMember({ id: 'm9', raftAddress: '127.0.64.9:25009', apiAddress: '127.0.64.9:26009' }, deadline(5_000)));
    expect([add.code, received.at(-1)]).toEqual(['TIMEOUT', 'POST /v1/cluster/members HTTP/1.1']);
    expect((await rejection(follower(cutting).transferLeader('m3', deadline(5_000)))).code).toBe('TIMEOUT');
  });

  it('answers 503 UNREACHABLE, not applied, when the leader refused the connection (nothing was sent)', async () => {
    const err = await rejection(follower(refusing).removeMember('m9', deadline(5_000)));
    expect([err.code, err.status]).toEqual(['UNREACHABLE', 503]);
    expect(err.message).toBe(
      `this manager could not forward the request to the leader m1 (http://${refusing}): cannot reach http://${refusing}/v1/cluster/members/m9 (ECONNREFUSED); it was not sent, so nothing was applied`,
    );
  });

  it('answers a read that was cut 503 UNREACHABLE: a read changes nothing', async () => {
    const err = await rejection(follower(cutting).listMembers(deadline(5_000)));
    expect([err.code, err.status]).toEqual(['UNREACHABLE', 503]);
    expect(err.message).toMatch(/; a read changes nothing: retry$/);
  });
});

describe('forwardFailure', () => {
  const leader = { id: 'm3', url: 'https://127.0.64.3:28003' };
  const url = `${leader.url}/v1/cluster/members/m9`;
  const failed = (code: string, message: string): Error => Object.assign(new Error(message), { code });

  it('maps a failure after the request may have left to 504 TIMEOUT for a write, 503 for a read', () => {
    const cut = transportError(failed('UND_ERR_SOCKET', 'other side closed'), 'DELETE', url);
    expect(cut.code).toBe('UNREACHABLE'); // the client's own code: the forward turns it into the answer
    expect(forwardFailure(cut, 'DELETE', leader)).toMatchObject({
      code: 'TIMEOUT',
      status: 504,
      message: 'this manager forwarded the request to the leader m3 (https://127.0.64.3:28003), which closed the connection before answering (other side closed); the outcome is unknown',
    });
    const reset = transportError(failed('ECONNRESET', 'read ECONNRESET'), 'POST', url);
    expect(forwardFailure(reset, 'POST', leader)).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('closed the connection before answering (ECONNRESET)') });
    expect(forwardFailure(transportError(failed('UND_ERR_SOCKET', 'other side closed'), 'GET', url), 'GET', leader)).toMatchObject({ code: 'UNREACHABLE', status: 503 });
  });

  it("maps the client's own timeout to 504 TIMEOUT for a write, and passes on a TIMEOUT the leader answered as it is", () => {
    const own = new MinkubeError('TIMEOUT', `DELETE ${url}: no answer within 2000 ms; the outcome is unknown`, { cause: new Error('no answer within 2000 ms') });
    expect(forwardFailure(own, 'DELETE', leader)).toMatchObject({
      code: 'TIMEOUT',
      message: 'this manager forwarded the request to the leader m3 (https://127.0.64.3:28003), which did not answer in time (no answer within 2000 ms); the outcome is unknown',
    });
    const answered = new MinkubeError('TIMEOUT', 'the membership change at index 12 is not committed yet; its outcome is unknown');
    expect(forwardFailure(answered, 'DELETE', leader)).toBe(answered);
  });

  it('keeps 503 UNREACHABLE for a write surely not sent: a refused connection, a failed lookup, a refused TLS handshake', () => {
    for (const cause of [failed('ECONNREFUSED', 'connect ECONNREFUSED'), failed('ENOTFOUND', 'getaddrinfo ENOTFOUND'), failed('ERR_TLS_CERT_ALTNAME_INVALID', 'not for the host'), failed('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')]) {
      const mapped = forwardFailure(transportError(cause, 'DELETE', url), 'DELETE', leader) as MinkubeError;
      expect([mapped.code, mapped.status], cause.message).toEqual(['UNREACHABLE', 503]);
      expect(mapped.message).toMatch(/^this manager could not forward the request to the leader m3 \(https:\/\/127\.0\.64\.3:28003\): cannot reach .*; it was not sent, so nothing was applied$/);
    }
  });
});
