// `minkube status` shows each manager's command version and build, and what the cluster runs at while a member is
// older (an operator could not tell which build each node ran: `--version` said 0.1.0 for both).
import { describe, expect, it } from 'vitest';
import { memberStatusOf, statusText } from '../../src/cli/status.js';
import { defaultView } from '../api/fake-service.js';

const member = (id: string, commandVersion: number | null) => ({ id, raftAddress: '127.0.65.1:1', apiAddress: `127.0.65.${id.slice(1)}:8000`, voter: true, reachable: true, commandVersion });

describe('versions in minkube status', () => {
  it("names each member's command version and build, and the members holding the cluster back", () => {
    const members = [
      memberStatusOf(member('m1', 11), { view: defaultView({ id: 'm1', role: 'leader', commandVersion: 11, build: { version: '0.1.0', commit: '1a2b3c4' }, clusterCommandVersion: 10 }) }, 'm1'),
      // An older manager says neither: the leader's count of it (10) is shown.
      memberStatusOf(member('m2', 10), { view: defaultView({ id: 'm2', role: 'follower' }) }, 'm1'),
    ];
    expect(members.map((m) => [m.commandVersion, m.build])).toEqual([[11, '0.1.0 (commit 1a2b3c4)'], [10, undefined]]);
    const lines = statusText({ leaderId: 'm1', term: 1, members, noQuorumReason: null, clusterCommandVersion: 10 });
    expect(lines.slice(-2)).toEqual([
      'versions: m1 command version 11, 0.1.0 (commit 1a2b3c4); m2 command version 10',
      'the cluster runs at command version 10: upgrade m2 (see README "Upgrading")',
    ]);
  });

  it('says the cluster waits on the leader, not "upgrade" with no name, while every member shows the newest but the leader has not heard them all (re-tester: "upgrade  (see README")', () => {
    const members = [
      memberStatusOf(member('m1', 12), { view: defaultView({ id: 'm1', role: 'leader', commandVersion: 12, clusterCommandVersion: 10 }) }, 'm1'),
      memberStatusOf(member('m2', 12), { view: defaultView({ id: 'm2', role: 'follower', commandVersion: 12 }) }, 'm1'),
    ];
    const lines = statusText({ leaderId: 'm1', term: 1, members, noQuorumReason: null, clusterCommandVersion: 10 });
    expect(lines.at(-1)).toBe('the cluster runs at command version 10 until the leader has heard every member say 12 (it asks every 5 s)');
  });
});
