// A follower passes a membership request on to the leader it knows. When that leader has just removed itself and
// handed over, it answers NOT_READY ("not a member": it applied nothing); the follower must not pass that on as its
// own answer (every manager asked in that gap said the same of itself, and the CLI had nowhere to go): it waits for
// the next leader and asks it. Real HTTP on 127.0.44.1 (ports 44000-44999) between fake leaders; the follower's
// driver is a stub whose known leader moves on.
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId, term, type NodeId } from '../../src/lib/ids.js';
import { MembershipServiceImpl } from '../../src/manager/membership.js';
import type { RaftNodeDriver } from '../../src/manager/node.js';
import type { RaftStatus } from '../../src/raft/types.js';
import { defaultView, FakeManagerService, FakeMembershipService } from '../api/fake-service.js';
import { rejection } from '../support/errors.js';
import { freePortIn, sleep } from '../support/wait.js';

const host = '127.0.44.1';
const removed = new FakeMembershipService(defaultView().members.map((m) => ({ ...m })), null);
const next = new FakeMembershipService(defaultView().members.map((m) => ({ ...m })), 'm3');
const apps: FastifyInstance[] = [];
const addresses = new Map<string, string>();

beforeAll(async () => {
  for (const [id, membership] of [['m1', removed], ['m3', next]] as const) {
    const app = buildManagerApp({ service: new FakeManagerService(), membership });
    const port = await freePortIn(host, 44000, 44999);
    await app.listen({ host, port });
    apps.push(app);
    addresses.set(id, `${host}:${port}`);
  }
});
afterAll(() => Promise.all(apps.map((a) => a.close())));

/** m2, a follower whose known leader is m1 until `moveAfter` looks at the driver, then m3 (null: never moves). */
function follower(moveAfter: number | null): { service: MembershipServiceImpl; looks: () => number } {
  let looks = 0;
  let leaderId: NodeId = nodeId('m1');
  const driver = {
    id: nodeId('m2'),
    directory: { get: (id: NodeId) => ({ raftAddress: '', apiAddress: addresses.get(id) ?? '' }), set: () => undefined },
    status: (): Partial<RaftStatus> => ({ id: nodeId('m2'), role: 'follower', leaderId, voters: [], learners: [], term: term(7) }),
    notMemberError: () => null,
    noLeaderError: () => new MinkubeError('NO_LEADER'),
    whenChanged: async (ms: number) => {
      if (++looks === moveAfter) leaderId = nodeId('m3');
      await sleep(Math.min(ms, 5));
    },
  };
  const service = new MembershipServiceImpl({
    driver: () => driver as unknown as RaftNodeDriver<unknown>,
    reachable: () => true,
    logger: pino({ level: 'silent' }),
    electionTimeoutMs: 100,
    worker: () => undefined,
    settings: () => ({}),
  });
  return { service, looks: () => looks };
}

const notMember = (): MinkubeError =>
  new MinkubeError('NOT_READY', 'this manager is not a member of the cluster (removed, or not added yet): send the request to another manager');
const deadline = (ms: number) => ({ requestId: 'fwd', deadlineMs: performance.now() + ms });

describe('a follower forwarding to a leader that removed itself', () => {
  it('waits for the next leader and forwards there, for every membership request', async () => {
    const requests: [string, (s: MembershipServiceImpl) => Promise<unknown>][] = [
      ['removeMember', (s) => s.removeMember('m2', deadline(5_000))],
      ['transferLeader', (s) => s.transferLeader('m1', deadline(5_000))],
      ['addMember', (s) => s.addMember({ id: 'm4', raftAddress: '127.0.44.4:7004', apiAddress: '127.0.44.4:8004' }, deadline(5_000))],
      ['listMembers', (s) => s.listMembers(deadline(5_000))],
      ['clusterSettings', (s) => s.clusterSettings(deadline(5_000))],
    ];
    for (const [method, send] of requests) {
      removed.failNext = notMember();
      const before = [removed.calls.length, next.calls.length];
      await send(follower(3).service);
      expect([removed.calls.length - before[0]!, next.calls.length - before[1]!], method).toEqual([1, 1]);
      expect(next.calls.at(-1)!.method).toBe(method);
    }
  });

  it("answers the leader's settings, never its own", async () => {
    const { leaderId, settings } = await follower(null).service.clusterSettings(deadline(5_000));
    expect(leaderId).toBe('m1');
    expect(settings).toEqual(removed.settings);
    expect(settings).toMatchObject({ tasks: { workerTtlMs: 10_000 } });
  });

  it('answers NO_LEADER naming what the old leader said when no other leader is known by the deadline', async () => {
    removed.failNext = notMember();
    const err = await rejection(follower(null).service.removeMember('m2', deadline(300)));
    expect(err.code).toBe('NO_LEADER');
    expect(err.message).toBe(`the leader this manager knows, m1, cannot serve the request (${notMember().message}), and no other leader is known yet; retry`);
  });

  it('passes on the leader\'s other refusals as they are', async () => {
    removed.failNext = new MinkubeError('MEMBERSHIP_CHANGE_REFUSED', 'the last voter');
    expect(await rejection(follower(1).service.removeMember('m2', deadline(2_000)))).toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED', message: 'the last voter' });
  });
});
