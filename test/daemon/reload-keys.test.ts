// What a reload does with each changed key: the diff names leaves (a rate limit whole), and each key is live,
// needs a restart (with the reason), or is not used by that kind of node.
import { describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { classifyKey, diffConfigs, liveRateLimits } from '../../src/daemon/reload.js';

const base = { insecure: true, managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1' }] };
const parse = (extra: Record<string, unknown>) => parseClusterConfig({ ...base, ...extra }, '/tmp');

describe('diffConfigs', () => {
  it('names each changed leaf, a rate limit and the member lists whole, and nothing for defaults written out', () => {
    const a = parse({});
    expect(diffConfigs(a, parse({ tasks: { workerTtlMs: 2000 }, raft: { heartbeatIntervalMs: 50 } }))).toEqual([]);
    const b = parse({
      log: { level: 'debug' },
      raft: { electionTimeoutMs: 900 },
      api: { rateLimits: { viewer: { requestsPerS: 1, burst: 2 } }, rateLimitAnonymous: { requestsPerS: 5, burst: 5 } },
      tasks: { assignTimeoutMs: 5000 },
      managers: [{ ...base.managers[0], apiAddress: '127.0.0.1:8009' }],
    });
    expect(diffConfigs(a, b)).toEqual(['api.rateLimitAnonymous', 'api.rateLimits.viewer', 'log.level', 'managers', 'raft.electionTimeoutMs', 'tasks.assignTimeoutMs']);
  });
});

describe('classifyKey', () => {
  it('applies the log level, rate limits, the API certificate and the task timings and retention live on a manager', () => {
    for (const key of ['log.level', 'api.rateLimits.viewer', 'api.rateLimitAnonymous', 'api.tlsCertFile', 'tasks.assignTimeoutMs', 'tasks.backoffCapMs', 'taskRetention.finishedMax']) {
      expect(classifyKey('manager', key), key).toEqual({ kind: 'live' });
    }
  });

  it('refuses what is read at start, with the reason', () => {
    expect(classifyKey('manager', 'raft.electionTimeoutMs')).toEqual({ kind: 'restart', reason: expect.stringContaining('Raft timings') as string });
    expect(classifyKey('manager', 'insecure')).toMatchObject({ kind: 'restart' });
    expect(classifyKey('manager', 'managers')).toEqual({ kind: 'restart', reason: expect.stringContaining('member add') as string });
    expect(classifyKey('manager', 'api.bodyLimitBytes')).toMatchObject({ kind: 'restart' });
    expect(classifyKey('manager', 'tasks.reconcileIntervalMs')).toMatchObject({ kind: 'restart' });
    expect(classifyKey('manager', 'some.future.key')).toMatchObject({ kind: 'restart' });
    expect(classifyKey('worker', 'workers')).toMatchObject({ kind: 'restart' });
    expect(classifyKey('worker', 'tasks.workerHeartbeatIntervalMs')).toMatchObject({ kind: 'restart' });
  });

  it('ignores on a node what that kind of node does not read', () => {
    expect(classifyKey('worker', 'api.rateLimits.viewer')).toEqual({ kind: 'ignored' });
    expect(classifyKey('worker', 'raft.electionTimeoutMs')).toEqual({ kind: 'ignored' });
    expect(classifyKey('worker', 'log.level')).toEqual({ kind: 'live' });
    expect(classifyKey('manager', 'workers')).toEqual({ kind: 'ignored' });
  });

  it("applies api.tlsCaFile live on both kinds of node: each one's client trusts it", () => {
    expect(classifyKey('manager', 'api.tlsCaFile')).toEqual({ kind: 'live' });
    expect(classifyKey('worker', 'api.tlsCaFile')).toEqual({ kind: 'live' });
  });
});

describe('liveRateLimits', () => {
  it('reads the running config at every use', () => {
    const config = parse({});
    const limits = liveRateLimits(config);
    expect(limits.roles.viewer).toEqual({ requestsPerS: 200, burst: 400 });
    (config.api as { rateLimitAnonymous: unknown }).rateLimitAnonymous = { requestsPerS: 1, burst: 1 };
    (config.api.rateLimits as Record<string, unknown>).viewer = { requestsPerS: 2, burst: 3 };
    expect(limits.anonymous).toEqual({ requestsPerS: 1, burst: 1 });
    expect(limits.roles.viewer).toEqual({ requestsPerS: 2, burst: 3 });
    // The defaults every parse shares were not touched.
    expect(parse({}).api.rateLimits.viewer).toEqual({ requestsPerS: 200, burst: 400 });
  });
});
