// The settings a manager joining from flags alone takes from the cluster: what the leader answers (every key that must
// agree across managers, spelt out, and nothing of one host's: no certificate files, no log level), and the config the
// joiner keeps from them (itself and those settings, checked as any config file; keys of a newer leader dropped).
import { describe, expect, it } from 'vitest';
import { ClusterSettingsSchema, clusterSettingsOf, joinedManagerConfig, parseClusterConfig, type ClusterConfig } from '../../src/config/cluster.js';
import { MinkubeError } from '../../src/lib/errors.js';

const m1 = { id: 'm1', raftAddress: '127.0.65.1:7001', apiAddress: '127.0.65.1:8001', dataDir: 'm1' };
const m4 = { id: 'm4', raftAddress: '127.0.65.4:7004', apiAddress: '127.0.65.4:8004', dataDir: '/srv/m4' };

/** A busy host's cluster (the outside tester's timings), with every other cluster-wide key off its default too. */
const busy = parseClusterConfig(
  {
    managers: [m1],
    workers: [{ id: 'w1', apiAddress: '127.0.65.9:9001', runtime: 'process' }],
    raft: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000, snapshotThresholdEntries: 5000 },
    api: {
      bodyLimitBytes: 65_536,
      requestTimeoutMs: 4000,
      tlsCaFile: 'corp-ca.crt',
      rateLimits: { viewer: { requestsPerS: 5, burst: 10 }, 'ci-bot': { requestsPerS: 50, burst: 100 } },
      rateLimitAnonymous: { requestsPerS: 3, burst: 6 },
    },
    tasks: { workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000, backoffCapMs: 30_000, retention: { finishedMax: 500 } },
    tls: { certLifetimeS: 30 * 86_400 },
    log: { level: 'debug' },
    backup: { dir: 'backups', retain: 3 },
    metrics: { enabled: false },
    scheduler: { preemption: true },
  },
  '/etc/minkube',
);

/** The cluster-wide part of a running config, as the manager holds it. */
function clusterWide(c: ClusterConfig): unknown {
  const { bodyLimitBytes, requestTimeoutMs, rateLimits, rateLimitAnonymous } = c.api;
  return { raft: c.raft, api: { bodyLimitBytes, requestTimeoutMs, rateLimits, rateLimitAnonymous }, tasks: c.tasks, taskRetention: c.taskRetention, tls: c.tls, backup: c.backup, metrics: c.metrics, scheduler: c.scheduler };
}

describe("clusterSettingsOf: what the leader answers of its running config", () => {
  it('spells out every key that must agree across managers, defaults included, and the backup directory as an absolute path', () => {
    expect(clusterSettingsOf(busy)).toEqual({
      raft: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000, snapshotThresholdEntries: 5000, snapshotThresholdBytes: 64 * 1024 * 1024 },
      api: {
        bodyLimitBytes: 65_536,
        requestTimeoutMs: 4000,
        rateLimits: {
          admin: { requestsPerS: 10_000, burst: 20_000 },
          operator: { requestsPerS: 2000, burst: 4000 },
          developer: { requestsPerS: 500, burst: 1000 },
          viewer: { requestsPerS: 5, burst: 10 },
          'ci-bot': { requestsPerS: 50, burst: 100 },
        },
        rateLimitAnonymous: { requestsPerS: 3, burst: 6 },
      },
      tasks: {
        workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000, reconcileIntervalMs: 1000, backoffBaseMs: 1000, backoffCapMs: 30_000,
        assignTimeoutMs: 10_000, stopTimeoutMs: 10_000, retention: { finishedMax: 500, finishedAgeS: 86_400 },
      },
      tls: { certLifetimeS: 30 * 86_400 },
      backup: { intervalS: 3600, retain: 3, dir: '/etc/minkube/backups' },
      metrics: { enabled: false },
      scheduler: { preemption: true },
    });
  });

  it('says nothing of backups when the leader takes none, and never a host path of the API certificate, the log level, the members or insecure', () => {
    const plain = parseClusterConfig({ insecure: true, managers: [m1], api: { tlsCertFile: 'api.crt', tlsKeyFile: 'api.key' }, log: { level: 'warn' } }, '/etc/minkube');
    const settings = clusterSettingsOf(plain);
    expect(Object.keys(settings).sort()).toEqual(['api', 'metrics', 'raft', 'scheduler', 'tasks', 'tls']);
    expect(Object.keys(settings.api).sort()).toEqual(['bodyLimitBytes', 'rateLimitAnonymous', 'rateLimits', 'requestTimeoutMs']);
  });

  it('answers a copy: changing it changes nothing the manager runs with', () => {
    const c = parseClusterConfig({ managers: [m1] }, '/etc/minkube');
    const settings = clusterSettingsOf(c);
    settings.api.rateLimits!.viewer!.burst = 1;
    settings.tasks.workerTtlMs = 1;
    expect(c.api.rateLimits.viewer!.burst).toBe(400);
    expect(c.tasks.workerTtlMs).toBe(2000);
  });
});

describe("joinedManagerConfig: the joiner's DIR/cluster.json", () => {
  const source = 'the settings m1 answered';

  it('runs a joiner with exactly the cluster-wide settings the leader runs, itself its only manager', () => {
    const { file, config } = joinedManagerConfig(JSON.parse(JSON.stringify(clusterSettingsOf(busy))), m4, false, '/srv/m4', source);
    expect(clusterWide(config)).toEqual(clusterWide(busy));
    expect(config.managers).toEqual([m4]);
    expect(config.insecure).toBe(false);
    // Not the leader's: a joiner's own log level, workers (none), certificate files (none).
    expect(config.log).toEqual({});
    expect(config.workers).toEqual([]);
    expect(config.api.tlsCaFile).toBeUndefined();
    // The file is a config file as a user would write it: read again, it is the same config.
    expect(parseClusterConfig(JSON.parse(JSON.stringify(file)), '/srv/m4')).toEqual(config);
    expect(file).not.toHaveProperty('insecure');
  });

  it('keeps insecure: true for a manager that joined an insecure cluster', () => {
    const { file, config } = joinedManagerConfig(clusterSettingsOf(busy), m4, true, '/srv/m4', source);
    expect(file.insecure).toBe(true);
    expect(config.insecure).toBe(true);
  });

  it("drops what this build does not know (a newer leader's keys): it could not run with them", () => {
    const newer = { ...clusterSettingsOf(busy), tasks: { ...clusterSettingsOf(busy).tasks, futureKnobMs: 5 }, quantum: { enabled: true } };
    const { file, config } = joinedManagerConfig(newer, m4, false, '/srv/m4', source);
    expect(file).not.toHaveProperty('quantum');
    expect(file.tasks).not.toHaveProperty('futureKnobMs');
    expect(config.tasks.workerTtlMs).toBe(10_000);
  });

  it('refuses settings that break the rules of a config (CONFIG_INVALID naming where they came from and each problem)', () => {
    const bad = { ...clusterSettingsOf(busy), tasks: { ...clusterSettingsOf(busy).tasks, workerTtlMs: 1500 } };
    let err: unknown;
    try {
      joinedManagerConfig(bad, m4, false, '/srv/m4', source);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MinkubeError);
    expect((err as MinkubeError).code).toBe('CONFIG_INVALID');
    expect((err as MinkubeError).message).toMatch(/^the settings m1 answered is invalid \(1 problem\):\n {2}- tasks\.workerTtlMs: must be at least 3 × workerHeartbeatIntervalMs/);
    expect(() => joinedManagerConfig('no settings', m4, false, '/srv/m4', source)).toThrow('settings: the cluster answered no settings (expected an object)');
  });

  it("is what ClusterSettingsSchema describes (the route's answer)", async () => {
    const { Value } = await import('@sinclair/typebox/value');
    expect(Value.Check(ClusterSettingsSchema, clusterSettingsOf(busy))).toBe(true);
  });
});
