// How a secure manager checks a token it does not know (managerAppSecurity's resolveToken): it refuses it (null, a
// 401 for the auth plugin) only after it has applied everything the cluster had committed when the request came (the
// catch-up barrier), and answers NOT_READY when it cannot catch up. Over a fake node whose applied index lags its
// commit, and over real drivers where the manager that proposed a token loses leadership before the token commits.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { managerAppSecurity } from '../../src/daemon/manager-security.js';
import type { NodeSecurity } from '../../src/daemon/security.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { AuthServiceImpl } from '../../src/manager/auth-service.js';
import { newApiToken } from '../../src/security/tokens.js';
import { DriverCluster, waitFor, type DriverNode } from '../manager/driver-harness.js';

const logger = pino({ level: 'silent' });
const noSecurity = {} as NodeSecurity;
const bootstrapCmd = (): Command => {
  const t = newApiToken();
  return { op: 'auth.bootstrap', accessor: t.accessor, secretHash: t.secretHash, sessionKey: Buffer.alloc(32, 7).toString('base64'), atMs: Date.now() };
};
const tokenCmd = (t: { accessor: string; secretHash: string }, name: string): Command => ({
  op: 'auth.tokenCreate', accessor: t.accessor, secretHash: t.secretHash, name, role: 'viewer', expiresAtMs: null, atMs: Date.now(),
});

/** A manager whose state machine applies committed entries only when a barrier asks (or never, when it fails). */
class LaggingNode {
  readonly sm = new KvStateMachine();
  private applied = 0;
  private readonly committed: Uint8Array[] = [];
  barrierFails: MinkubeError | null = null;
  barriers = 0;

  commit(cmd: Command): void {
    this.committed.push(encodeCommand({ clientId: 'other', seq: this.committed.length + 1, cmd }));
  }

  /** As the ReadIndex barrier: resolves once everything committed before the call is applied. */
  async barrier(): Promise<void> {
    this.barriers++;
    if (this.barrierFails !== null) throw this.barrierFails;
    while (this.applied < this.committed.length) this.sm.applyEntry(this.applied + 1, this.committed[this.applied++]!);
  }

  async proposeCommand(): Promise<ApplyResult> {
    throw new Error('not proposed here');
  }
}

function securityOf(node: { sm: KvStateMachine; barrier(): Promise<void> }) {
  const auth = new AuthServiceImpl({ store: node.sm.auth, raft: node as never, clock: systemClock, logger, caCertPem: null });
  return managerAppSecurity(noSecurity, auth, { managerRefusal: () => null, workerRemovedAtMs: () => undefined }, () => node.barrier(), () => false);
}

describe('a token this manager has not applied yet', () => {
  it('is checked after the catch-up: a token committed elsewhere but not applied here resolves, not null', async () => {
    const node = new LaggingNode();
    node.commit(bootstrapCmd());
    await node.barrier();
    const t = newApiToken();
    node.commit(tokenCmd(t, 'made-elsewhere'));
    // Not applied here yet: without the catch-up this manager would call the token unknown.
    expect(node.sm.auth.tokenByAccessor(t.accessor)).toBeUndefined();
    const security = securityOf(node);
    expect(await security.resolveToken(t.accessor)).toMatchObject({ role: 'viewer', secretHash: t.secretHash });
    // A token it knows costs no barrier; one the cluster never made is unknown after one.
    const before = node.barriers;
    await security.resolveToken(t.accessor);
    expect(node.barriers).toBe(before);
    expect(await security.resolveToken(newApiToken().accessor)).toBeNull();
    expect(node.barriers).toBe(before + 1);
  });

  it('is NOT_READY, never unknown, when the manager cannot catch up (no leader)', async () => {
    const node = new LaggingNode();
    node.commit(bootstrapCmd());
    await node.barrier();
    const t = newApiToken();
    node.commit(tokenCmd(t, 'made-elsewhere'));
    node.barrierFails = new MinkubeError('NO_LEADER', 'no leader');
    await expect(Promise.resolve(securityOf(node).resolveToken(t.accessor))).rejects.toMatchObject({
      code: 'NOT_READY', message: expect.stringMatching(/^this manager does not know the token and cannot check that it has the cluster's latest tokens \(NO_LEADER/) as string,
    });
  });
});

describe('a token whose proposer loses leadership before it commits', () => {
  let cluster: DriverCluster | null = null;
  afterEach(async () => {
    for (const id of [...(cluster?.running.keys() ?? [])]) await cluster!.stop(id);
    cluster = null;
  });

  it('is good on the new leader and its follower at once: each checks it only after the new term commits it', async () => {
    const c = (cluster = new DriverCluster({ seed: 41 }));
    await c.startAll();
    const old = await c.leader();
    const deadline = (): number => performance.now() + 10_000;
    const ok = await old.service.proposeCommand(bootstrapCmd(), deadline(), 'bootstrap');
    expect(ok.ok).toBe(true);
    const oldTerm = old.driver.status().term;
    const followers = [...c.running.values()].filter((n) => n.id !== old.id);
    // The followers take the token's entry but their acknowledgements never reach the leader: it stays uncommitted.
    for (const f of followers) c.network.cut(f.id, old.id);
    const t = newApiToken();
    const proposed = old.service.proposeCommand(tokenCmd(t, 'in-flight'), deadline(), 'token').catch((err: unknown) => err);
    const entryIndex = old.driver.status().lastIndex;
    await waitFor('the followers to hold the token entry', () => followers.every((f) => f.driver.status().lastIndex >= entryIndex), 10_000);
    // The next leader's acknowledgements are held back until both checks wait: it cannot commit its term's first entry
    // (nor the token's before it), so it does not yet know the cluster's commit index, and must not answer before.
    let holding = true;
    for (const f of followers) {
      const deliver = f.transport.deliver.bind(f.transport);
      f.transport.deliver = (m) => {
        if (holding && m.type === 'appendResponse' && m.term > oldTerm) return;
        deliver(m);
      };
    }
    await c.stop(old.id);
    c.network.heal();
    const leader = await c.leader(10_000);
    expect(leader.driver.status().term).toBeGreaterThan(oldTerm);
    // Neither has applied it: only a leader of the next term, once its own first entry commits, commits it.
    for (const f of followers) expect(f.service.kv.auth.tokenByAccessor(t.accessor), f.id).toBeUndefined();
    const settled: (string | null)[] = followers.map(() => null);
    const checks = followers.map((f: DriverNode, i) => {
      const security = securityOf({ sm: f.service.kv, barrier: () => f.service.barrier(performance.now() + 10_000) });
      return Promise.resolve(security.resolveToken(t.accessor)).finally(() => (settled[i] = f.id));
    });
    // Both wait on the leader's first commit of its term (no answer, not null): a few of its heartbeats go by first.
    const heartbeatsBefore = leader.transport.counters.messagesSent;
    await waitFor('the new leader to send more heartbeats', () => leader.transport.counters.messagesSent > heartbeatsBefore + 20, 10_000);
    expect(settled).toEqual([null, null]);
    holding = false;
    for (const r of await Promise.all(checks)) expect(r).toMatchObject({ role: 'viewer', secretHash: t.secretHash });
    await proposed;
  }, 30_000);
});
