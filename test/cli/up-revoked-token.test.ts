// `minkube up`'s judgement that the folder's admin token was revoked, one poll round at a time: a 401 is a revocation
// only when the token was not pending (a new CA's token a leader has yet to add) when the round's requests left. After
// a CA rotation the leader clears the mark once the token's entry commits, which can be while a request that reached
// a manager before that commit is answered 401: that round says nothing, and up must not warn of a revocation.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterView } from '../../src/contracts/services.js';
import { pollClusterViews } from '../../src/cli/up.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { clearAdminTokenPending } from '../../src/security/pki-files.js';
import { newApiToken } from '../../src/security/tokens.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A cluster folder whose admin token is marked pending (admin.token.pending names its accessor), as after a rotation. */
function pendingFolder(): { clusterDir: string; token: string } {
  const clusterDir = mkdtempSync(join(tmpdir(), 'minkube-up-poll-'));
  dirs.push(clusterDir);
  const { token, accessor } = newApiToken();
  writeFileSync(join(clusterDir, 'admin.token'), `${token}\n`);
  writeFileSync(join(clusterDir, 'admin.token.pending'), `${accessor}\n`);
  return { clusterDir, token };
}

const refuse = (): Promise<ClusterView> => Promise.reject(new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token'));
const view = { leaderId: 'm1' } as unknown as ClusterView;

describe('pollClusterViews', () => {
  it('a 401 to a request sent while the token was pending is no revocation, even when the mark is cleared before the answer', async () => {
    const admin = pendingFolder();
    // Every manager was asked before the token's entry committed: the leader commits it, clears the mark, and only
    // then do the answers (401: the token was not yet known when they were asked) come back.
    const commitsWhileAsked = { cluster: async (): Promise<ClusterView> => {
      await clearAdminTokenPending(admin.clusterDir);
      return refuse();
    } };
    const first = await pollClusterViews([commitsWhileAsked, { cluster: refuse }, { cluster: refuse }], admin);
    expect(first.revokedBy).toBeNull();
    expect(first.answers.map((a) => a.refused)).toEqual([true, true, true]);
    // The next round starts with the mark gone (the token was committed before it): a 401 now means it was revoked.
    const next = await pollClusterViews([{ cluster: refuse }, { cluster: refuse }, { cluster: refuse }], admin);
    expect(next.revokedBy).toBe(0);
  });

  it('without a mark, one 401 and no manager letting the token in is a revocation, naming the first that refused', async () => {
    const admin = pendingFolder();
    await clearAdminTokenPending(admin.clusterDir);
    const down = (): Promise<ClusterView> => Promise.reject(new MinkubeError('UNREACHABLE', 'connection refused'));
    expect((await pollClusterViews([{ cluster: down }, { cluster: refuse }], admin)).revokedBy).toBe(1);
    // One manager that lets it in: the token is live, whatever the others say (one may be behind or recovering).
    const mixed = await pollClusterViews([{ cluster: refuse }, { cluster: async () => view }], admin);
    expect(mixed.revokedBy).toBeNull();
    expect(mixed.answers.map((a) => a.view)).toEqual([null, view]);
    // No 401 at all (no leader yet, every manager unreachable): nothing to judge.
    expect((await pollClusterViews([{ cluster: down }, { cluster: down }], admin)).revokedBy).toBeNull();
  });

  it('a mark naming another token (one replaced since) does not hold off the judgement of this one', async () => {
    const admin = pendingFolder();
    writeFileSync(join(admin.clusterDir, 'admin.token.pending'), `${newApiToken().accessor}\n`);
    expect((await pollClusterViews([{ cluster: refuse }], admin)).revokedBy).toBe(0);
  });

  it('an insecure cluster (no admin token) never has a revoked token', async () => {
    expect((await pollClusterViews([{ cluster: refuse }], undefined)).revokedBy).toBeNull();
  });
});
