// The cluster config: defaults, path resolution, and one CONFIG_INVALID error that lists every problem.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAddress, loadClusterConfig, parseClusterConfig } from '../../src/config/cluster.js';
import { MinkubeError } from '../../src/lib/errors.js';

const manager = (id: string, n: number, extra: object = {}) => ({
  id,
  raftAddress: `127.0.0.${n}:700${n}`,
  apiAddress: `127.0.0.${n}:800${n}`,
  dataDir: `./data/${id}`,
  ...extra,
});
const valid = () => ({ managers: [manager('m1', 1), manager('m2', 2), manager('m3', 3)], workers: [{ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'auto' }] });

/** The problems listed in a CONFIG_INVALID error. */
function problemsOf(json: unknown): string[] {
  try {
    parseClusterConfig(json, '/etc/minkube');
  } catch (e) {
    expect(e).toBeInstanceOf(MinkubeError);
    expect((e as MinkubeError).code).toBe('CONFIG_INVALID');
    const problems = ((e as MinkubeError).details as { problems: string[] }).problems;
    for (const p of problems) expect((e as MinkubeError).message).toContain(p);
    return problems;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('parseClusterConfig', () => {
  it('fills in defaults and resolves data directories against the base directory', () => {
    const c = parseClusterConfig(valid(), '/etc/minkube');
    expect(c.managers[0]!.dataDir).toBe('/etc/minkube/data/m1');
    expect(c.raft).toEqual({ heartbeatIntervalMs: 50, electionTimeoutMs: 300, snapshotThresholdEntries: 20_000, snapshotThresholdBytes: 64 * 1024 * 1024 });
    expect(c.api).toEqual({
      bodyLimitBytes: 1024 * 1024,
      requestTimeoutMs: 2000,
      rateLimits: {
        admin: { requestsPerS: 10_000, burst: 20_000 },
        operator: { requestsPerS: 2000, burst: 4000 },
        developer: { requestsPerS: 500, burst: 1000 },
        viewer: { requestsPerS: 200, burst: 400 },
      },
      rateLimitAnonymous: { requestsPerS: 20, burst: 50 },
    });
    expect(c.workers).toEqual([{ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'auto', dataDir: '/etc/minkube/data/w1' }]);
    expect(c.tasks.backoffBaseMs).toBe(1000);
    expect(c.tasks.backoffCapMs).toBe(60_000);
  });

  it('keeps absolute data directories, resolves a worker dataDir, accepts no workers and IPv6 hosts', () => {
    const c = parseClusterConfig(
      { managers: [manager('m1', 1, { dataDir: '/var/m1', apiAddress: '[::1]:8001' })], workers: [{ id: 'w', apiAddress: 'localhost:9', runtime: 'docker', dataDir: 'w' }] },
      '/base',
    );
    expect(c.managers[0]!.dataDir).toBe('/var/m1');
    expect(c.workers[0]!.dataDir).toBe('/base/w');
    expect(parseClusterConfig({ managers: [manager('m1', 1)] }, '/').workers).toEqual([]);
  });

  it('accepts JSON text', () => {
    expect(parseClusterConfig(JSON.stringify(valid()), '/x').managers).toHaveLength(3);
  });

  it('reports unknown keys at every level', () => {
    const json = { ...valid(), extra: 1, raft: { heartbeatIntervalMs: 50, tick: 1 } };
    json.managers[1] = manager('m2', 2, { colour: 'red' });
    expect(problemsOf(json)).toEqual(expect.arrayContaining(['extra: unknown key', 'managers[1].colour: unknown key', 'raft.tick: unknown key']));
  });

  it('reports missing fields once each', () => {
    const json = valid() as { managers: Record<string, unknown>[] };
    delete json.managers[0]!.dataDir;
    delete json.managers[2]!.raftAddress;
    expect(problemsOf(json)).toEqual(['managers[0].dataDir: missing', 'managers[2].raftAddress: missing']);
    expect(problemsOf({})).toEqual(['managers: missing']);
  });

  it('takes rate limits per role over the defaults, custom policies\' names too', () => {
    const api = { rateLimits: { viewer: { requestsPerS: 5, burst: 10 }, auditors: { requestsPerS: 1, burst: 1 } }, rateLimitAnonymous: { requestsPerS: 2, burst: 3 } };
    const c = parseClusterConfig({ ...valid(), api }, '/x');
    expect(c.api.rateLimits).toMatchObject({ admin: { requestsPerS: 10_000, burst: 20_000 }, viewer: { requestsPerS: 5, burst: 10 }, auditors: { requestsPerS: 1, burst: 1 } });
    expect(c.api.rateLimitAnonymous).toEqual({ requestsPerS: 2, burst: 3 });
  });

  it('refuses rate limits that are not positive integers, or name no role, naming the key', () => {
    const api = {
      rateLimits: { viewer: { requestsPerS: 0, burst: 10 }, admin: { requestsPerS: 10, burst: 1.5 }, Operator: { requestsPerS: 1, burst: 1 }, developer: { requestsPerS: 1 } },
      rateLimitAnonymous: { requestsPerS: 20, burst: -1, window: 1 },
    };
    const problems = problemsOf({ ...valid(), api });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^api\.rateLimits\.viewer\.requestsPerS: expected integer to be greater or equal to 1/),
        expect.stringMatching(/^api\.rateLimits\.admin\.burst: expected integer$/),
        "api.rateLimits.Operator: not a valid role or policy name (a lower-case letter, then up to 62 lower-case letters, digits or '-')",
        'api.rateLimits.developer.burst: missing',
        expect.stringMatching(/^api\.rateLimitAnonymous\.burst: expected integer to be greater or equal to 1/),
        'api.rateLimitAnonymous.window: unknown key',
      ]),
    );
    expect(problems).toHaveLength(6);
  });

  it('reports wrong types', () => {
    const json = { ...valid(), raft: { heartbeatIntervalMs: '50' }, api: { bodyLimitBytes: 1.5 } };
    (json.workers[0] as Record<string, unknown>).runtime = 'podman';
    (json.managers[0] as Record<string, unknown>).id = 7;
    const problems = problemsOf(json);
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/raft\.heartbeatIntervalMs: expected integer/);
    expect(problems.join('\n')).toMatch(/api\.bodyLimitBytes: expected integer/);
    expect(problems.join('\n')).toMatch(/workers\[0\]\.runtime: expected one of "docker", "process", "auto"/);
    expect(problems.join('\n')).toMatch(/managers\[0\]\.id: expected string/);
    expect(problemsOf([1])).toEqual(['(root): expected object']);
  });

  it('reports bad addresses and ports outside 1..65535', () => {
    const json = valid();
    json.managers[0] = manager('m1', 1, { raftAddress: 'nohostport' });
    json.managers[1] = manager('m2', 2, { apiAddress: '127.0.0.2:70000' });
    json.managers[2] = manager('m3', 3, { apiAddress: '127.0.0.3:0' });
    json.workers[0]!.apiAddress = 'bad host:1';
    expect(problemsOf(json)).toEqual([
      'managers[0].raftAddress: expected host:port, got "nohostport"',
      'managers[1].apiAddress: port must be 1..65535, got "70000" in "127.0.0.2:70000"',
      'managers[2].apiAddress: port must be 1..65535, got "0" in "127.0.0.3:0"',
      'workers[0].apiAddress: bad host "bad host" in "bad host:1" (expected host:port)',
    ]);
  });

  it('says a port has a leading zero rather than that it is out of range (outside tester: 025009)', () => {
    const json = valid();
    json.managers[0] = manager('m1', 1, { raftAddress: '127.0.42.9:025009' });
    json.managers[1] = manager('m2', 2, { apiAddress: '127.0.0.2:08002' });
    json.managers[2] = manager('m3', 3, { apiAddress: '127.0.0.3:070000' });
    expect(problemsOf(json)).toEqual([
      'managers[0].raftAddress: port "025009" in "127.0.42.9:025009" has a leading zero (write 25009)',
      'managers[1].apiAddress: port "08002" in "127.0.0.2:08002" has a leading zero (write 8002)',
      'managers[2].apiAddress: port "070000" in "127.0.0.3:070000" has a leading zero; a port is 1..65535',
    ]);
    expect(checkAddress('127.0.0.1:00')).toBe('port "00" in "127.0.0.1:00" has a leading zero; a port is 1..65535');
  });

  it('reports duplicate ids across managers and workers, and duplicate addresses', () => {
    const json = valid();
    json.workers.push({ id: 'm2', apiAddress: '127.0.0.1:8001', runtime: 'process' });
    json.managers[2] = manager('m3', 3, { raftAddress: '127.0.0.2:7002' });
    expect(problemsOf(json)).toEqual([
      'managers[2].raftAddress: duplicate address "127.0.0.2:7002" (also managers[1].raftAddress)',
      'workers[1].id: duplicate id "m2" (also managers[1].id)',
      'workers[1].apiAddress: duplicate address "127.0.0.1:8001" (also managers[0].apiAddress)',
      // The worker m2 has no dataDir: its default, data/m2, is the manager m2's.
      'workers[1].dataDir: worker m2 and manager m2 have the same data directory /etc/minkube/data/m2 (each node needs its own)',
    ]);
    // localhost is 127.0.0.1, and a host's case does not matter.
    const spelled = valid();
    spelled.workers.push({ id: 'w9', apiAddress: 'LOCALHOST:8001', runtime: 'process' });
    expect(problemsOf(spelled)).toEqual(['workers[1].apiAddress: duplicate address "LOCALHOST:8001" (also managers[0].apiAddress)']);
  });

  it('requires electionTimeoutMs > 2 * heartbeatIntervalMs, defaults included', () => {
    expect(problemsOf({ ...valid(), raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 100 } })).toEqual([
      'raft.electionTimeoutMs: must be more than 2 × heartbeatIntervalMs (100 ms is not more than 2 × 50 ms)',
    ]);
    expect(problemsOf({ ...valid(), raft: { heartbeatIntervalMs: 150 } })).toHaveLength(1);
    expect(parseClusterConfig({ ...valid(), raft: { electionTimeoutMs: 101 } }, '/').raft.heartbeatIntervalMs).toBe(50);
  });

  it('requires workerTtlMs >= 3 * workerHeartbeatIntervalMs, defaults included', () => {
    const ttl = 'tasks.workerTtlMs: must be at least 3 × workerHeartbeatIntervalMs, so that a worker may miss 2 heartbeats before it is unreachable';
    // The tester's reload: a TTL under the default 500 ms heartbeat.
    expect(problemsOf({ ...valid(), tasks: { workerTtlMs: 100, lostGraceMs: 100 } })).toEqual([`${ttl} (100 ms is less than 3 × 500 ms)`]);
    // Barely above the heartbeat is not enough either.
    expect(problemsOf({ ...valid(), tasks: { workerHeartbeatIntervalMs: 1000, workerTtlMs: 1100 } })).toEqual([`${ttl} (1100 ms is less than 3 × 1000 ms)`]);
    // A slower heartbeat against the default 2000 ms TTL.
    expect(problemsOf({ ...valid(), tasks: { workerHeartbeatIntervalMs: 700 } })).toEqual([`${ttl} (2000 ms is less than 3 × 700 ms)`]);
    expect(parseClusterConfig({ ...valid(), tasks: { workerHeartbeatIntervalMs: 100, workerTtlMs: 300, lostGraceMs: 1 } }, '/').tasks.workerTtlMs).toBe(300);
  });

  it('requires backoffBaseMs <= backoffCapMs, defaults included', () => {
    expect(problemsOf({ ...valid(), tasks: { backoffBaseMs: 5000, backoffCapMs: 4000 } })).toEqual(['tasks.backoffBaseMs: must not be above backoffCapMs (5000 ms is above 4000 ms)']);
    expect(problemsOf({ ...valid(), tasks: { backoffCapMs: 500 } })).toEqual(['tasks.backoffBaseMs: must not be above backoffCapMs (1000 ms is above 500 ms)']);
    expect(parseClusterConfig({ ...valid(), tasks: { backoffBaseMs: 4000, backoffCapMs: 4000 } }, '/').tasks.backoffCapMs).toBe(4000);
  });

  it('refuses two nodes with one data directory, comparing resolved paths and naming both nodes', () => {
    const json = valid();
    json.managers[1] = manager('m2', 2, { dataDir: '/etc/minkube/data/m1/' });
    json.workers.push({ id: 'w2', apiAddress: '127.0.0.1:9002', runtime: 'process', dataDir: 'data/./m3' } as (typeof json.workers)[number]);
    json.managers.push(manager('m4', 4, { dataDir: 'data/w1' }));
    expect(problemsOf(json)).toEqual([
      'managers[1].dataDir: manager m2 and manager m1 have the same data directory /etc/minkube/data/m1 (each node needs its own)',
      // w1 has no dataDir: its default, data/w1, is m4's.
      'workers[0].dataDir: worker w1 and manager m4 have the same data directory /etc/minkube/data/w1 (each node needs its own)',
      'workers[1].dataDir: worker w2 and manager m3 have the same data directory /etc/minkube/data/m3 (each node needs its own)',
    ]);
  });

  it('takes snapshot thresholds, and refuses ones too small to be useful', () => {
    const c = parseClusterConfig({ ...valid(), raft: { snapshotThresholdEntries: 1000, snapshotThresholdBytes: 4096 } }, '/');
    expect(c.raft.snapshotThresholdEntries).toBe(1000);
    expect(c.raft.snapshotThresholdBytes).toBe(4096);
    const problems = problemsOf({ ...valid(), raft: { snapshotThresholdEntries: 5, snapshotThresholdBytes: 10 } });
    expect(problems).toHaveLength(2);
    expect(problems.join('\n')).toMatch(/raft\.snapshotThresholdEntries/);
    expect(problems.join('\n')).toMatch(/raft\.snapshotThresholdBytes/);
  });

  it('takes tls.certLifetimeS (default 90 days), a whole number of seconds from a minute to ten years', () => {
    expect(parseClusterConfig(valid(), '/').tls).toEqual({ certLifetimeS: 90 * 86_400 });
    expect(parseClusterConfig({ ...valid(), tls: { certLifetimeS: 60 } }, '/').tls.certLifetimeS).toBe(60);
    expect(parseClusterConfig({ ...valid(), tls: { certLifetimeS: 3650 * 86_400 } }, '/').tls.certLifetimeS).toBe(3650 * 86_400);
    expect(problemsOf({ ...valid(), tls: { certLifetimeS: 59 } })).toEqual([expect.stringMatching(/^tls\.certLifetimeS: expected integer to be greater or equal to 60/)]);
    expect(problemsOf({ ...valid(), tls: { certLifetimeS: 3650 * 86_400 + 1 } })).toEqual([expect.stringMatching(/^tls\.certLifetimeS: expected integer to be less or equal to 315360000/)]);
    expect(problemsOf({ ...valid(), tls: { certLifetimeS: 90.5 } })).toEqual(['tls.certLifetimeS: expected integer']);
    expect(problemsOf({ ...valid(), tls: { certExpiry: '90d' } })).toEqual(['tls.certExpiry: unknown key']);
  });

  it('requires at least one manager', () => {
    expect(problemsOf({ managers: [] })).toEqual(['managers: expected array length to be greater or equal to 1']);
  });

  it('lists every problem in one error, a shared data directory beside a duplicate id too', () => {
    const json = { managers: [manager('m1', 1, { raftAddress: 'x' }), manager('m1', 2)], raft: { electionTimeoutMs: 10 }, bogus: true };
    expect(problemsOf(json)).toEqual([
      'bogus: unknown key',
      'managers[0].raftAddress: expected host:port, got "x"',
      'managers[1].id: duplicate id "m1" (also managers[0].id)',
      // Both entries are m1: the first is named by its place in the file.
      'managers[1].dataDir: manager m1 and manager m1 (managers[0]) have the same data directory /etc/minkube/data/m1 (each node needs its own)',
      'raft.electionTimeoutMs: must be more than 2 × heartbeatIntervalMs (10 ms is not more than 2 × 50 ms)',
    ]);
  });
});

describe('checkAddress', () => {
  it.each(['127.0.0.1:1', 'localhost:65535', '[::1]:80', 'a-b.example.com:8080'])('accepts %s', (a) => expect(checkAddress(a)).toBeNull());
  it.each([':80', '127.0.0.1', '127.0.0.1:', '127.0.0.1:x', '127.0.0.1:123456', '-a:1', '::1:80'])('rejects %s', (a) => expect(checkAddress(a)).not.toBeNull());
});

describe('loadClusterConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minkube-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a file and resolves data directories against its directory', async () => {
    const path = join(dir, 'ok.json');
    await writeFile(path, JSON.stringify(valid()));
    const c = await loadClusterConfig(path);
    expect(c.managers[2]!.dataDir).toBe(join(dir, 'data/m3'));
  });

  it('a missing file is a clear CONFIG_INVALID', async () => {
    await expect(loadClusterConfig(join(dir, 'nope.json'))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/cannot read .*nope\.json: no such file/) as string });
  });

  it('invalid JSON is a clear CONFIG_INVALID', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, '{ "managers": [ }');
    await expect(loadClusterConfig(path)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/bad\.json is not valid JSON/) as string });
  });

  it('names the file in validation errors', async () => {
    const path = join(dir, 'invalid.json');
    await writeFile(path, JSON.stringify({ managers: [] }));
    await expect(loadClusterConfig(path)).rejects.toMatchObject({ message: expect.stringContaining(`${path} is invalid (1 problem)`) as string });
  });

  it('the example config at the repository root is valid', async () => {
    const c = await loadClusterConfig('cluster.example.json');
    expect(c.managers.map((m) => m.apiAddress)).toEqual(['127.0.0.1:8001', '127.0.0.2:8002', '127.0.0.3:8003']);
    expect(c.workers.map((w) => w.id)).toEqual(['w1', 'w2']);
    // README's dig lines ask 127.0.0.1:8053 after `npm start`.
    expect(c.managers.map((m) => m.dnsAddress)).toEqual(['127.0.0.1:8053', '127.0.0.2:8053', '127.0.0.3:8053']);
  });
});
