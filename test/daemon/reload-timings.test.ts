// A reload whose task timings would break the cluster changes nothing: neither a file that fails its own checks nor
// live keys that fail them against the running values of the keys that need a restart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadClusterConfig } from '../../src/config/cluster.js';
import { Reloader } from '../../src/daemon/reload.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-reload-timings-'));
const configPath = join(dir, 'cluster.json');
const base = { insecure: true, managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1' }] };
const write = (extra: Record<string, unknown>) => writeFileSync(configPath, JSON.stringify({ ...base, ...extra }));

async function reloaderWith(extra: Record<string, unknown>) {
  write(extra);
  const running = await loadClusterConfig(configPath);
  const reloader = new Reloader({ node: 'manager', id: 'm1', configPath, running, logger: pino({ level: 'silent' }), loggers: [] });
  return { running, reloader };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reloading task timings', () => {
  it('refuses a TTL under 3 heartbeats and applies nothing else from that file', async () => {
    const { running, reloader } = await reloaderWith({});
    write({ log: { level: 'debug' }, tasks: { workerTtlMs: 100, lostGraceMs: 100 } });
    await expect(reloader.reload()).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('tasks.workerTtlMs: must be at least 3 × workerHeartbeatIntervalMs') as string });
    expect(running.tasks).toMatchObject({ workerTtlMs: 2000, lostGraceMs: 1000 });
    expect(running.log).toEqual({});
  });

  it('refuses live keys that break the rules against a running key that needs a restart', async () => {
    const { running, reloader } = await reloaderWith({});
    // Valid as a file (400 >= 3 × 100), but the running heartbeat stays 500 ms until a restart.
    write({ tasks: { workerHeartbeatIntervalMs: 100, workerTtlMs: 400, backoffCapMs: 30_000 } });
    await expect(reloader.reload()).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/applied live to this manager \(keys that need a restart keep their running values\), is invalid \(1 problem\):\n.*\(400 ms is less than 3 × 500 ms\)/) as string,
    });
    expect(running.tasks).toMatchObject({ workerHeartbeatIntervalMs: 500, workerTtlMs: 2000, backoffCapMs: 60_000 });
  });

  it('applies timings that keep the rules', async () => {
    const { running, reloader } = await reloaderWith({});
    write({ tasks: { workerTtlMs: 1500, lostGraceMs: 100, backoffBaseMs: 2000, backoffCapMs: 2000 } });
    const report = await reloader.reload();
    expect(report.applied.map((a) => a.key)).toEqual(['tasks.backoffBaseMs', 'tasks.backoffCapMs', 'tasks.lostGraceMs', 'tasks.workerTtlMs']);
    expect(running.tasks).toMatchObject({ workerTtlMs: 1500, lostGraceMs: 100, backoffBaseMs: 2000, backoffCapMs: 2000 });
  });
});
