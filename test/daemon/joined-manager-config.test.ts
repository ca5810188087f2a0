// A manager that joins from flags alone runs with the cluster's settings, as its leader runs them, not the defaults:
// it keeps them with itself in <dataDir>/cluster.json (0600) before it starts, starts from that file again later (from
// --data-dir alone too), and a reload re-reads it. Only a data directory that joined before the file was kept runs on
// the defaults, and says so. In one process, over real sockets on 127.0.65.x (ports 20000-29999), insecure: the
// settings are asked openly there, as the other join steps are.
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { clusterSettingsOf, loadClusterConfig } from '../../src/config/cluster.js';
import { startManager, type RunningManager } from '../../src/daemon/manager.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { httpJson } from '../support/cluster.js';
import { eventually, freePortIn } from '../support/wait.js';

const root = mkdtempSync(join(tmpdir(), 'minkube-joined-config-'));
const running = new Set<RunningManager>();
afterAll(async () => {
  for (const m of running) await m.stop();
  rmSync(root, { recursive: true, force: true });
});

const lines = new Map<string, string[]>();
function loggerFor(id: string): Logger {
  const mine: string[] = lines.get(id) ?? [];
  lines.set(id, mine);
  return pino({ level: 'info' }, { write: (line: string) => void mine.push(line) });
}
const said = (id: string, text: string): boolean => (lines.get(id) ?? []).some((l) => l.includes(text));

async function address(host: string): Promise<string> {
  return `${host}:${await freePortIn(host, 20000, 29999)}`;
}

async function start(opts: Parameters<typeof startManager>[0]): Promise<RunningManager> {
  const m = await startManager({ ...opts, logger: loggerFor(opts.id) });
  running.add(m);
  return m;
}

async function stop(m: RunningManager): Promise<void> {
  await m.stop();
  running.delete(m);
}

type Settings = { leaderId: string; settings: Record<string, unknown> };
async function settingsVia(apiUrl: string): Promise<Settings> {
  const res = await httpJson(apiUrl, 'GET', '/v1/cluster/settings', undefined, 10_000);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as unknown as Settings;
}

async function transferTo(apiUrl: string, id: string): Promise<void> {
  await eventually(async () => {
    const res = await httpJson(apiUrl, 'POST', '/v1/cluster/leader', { id }, 15_000);
    return res.status === 200 && res.body.leaderId === id ? true : undefined;
  }, 60_000, `${id} to lead`);
}

it("joins from flags alone with the leader's settings kept in DIR/cluster.json, restarts and reloads from it", async () => {
  const m1Self = { id: 'm1', raftAddress: await address('127.0.65.1'), apiAddress: await address('127.0.65.1'), dataDir: 'm1' };
  const configPath = join(root, 'cluster.json');
  // A busy host's timings, and every other cluster-wide key off its default.
  const clusterFile = {
    insecure: true,
    managers: [m1Self],
    raft: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 },
    api: { requestTimeoutMs: 4000, rateLimitAnonymous: { requestsPerS: 7, burst: 9 } },
    tasks: { workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000, retention: { finishedMax: 500, finishedAgeS: 3600 } },
    tls: { certLifetimeS: 30 * 86_400 },
    backup: { dir: 'backups', intervalS: 7200, retain: 2 },
    metrics: { enabled: false },
    scheduler: { preemption: true },
    log: { level: 'info' },
  };
  writeFileSync(configPath, JSON.stringify(clusterFile));
  const expected = clusterSettingsOf(await loadClusterConfig(configPath));
  const m1 = await start({ id: 'm1', configPath });
  await eventually(async () => ((await httpJson(m1.apiUrl, 'GET', '/v1/cluster')).body.role === 'leader' ? true : undefined), 20_000, 'm1 to lead');

  const m2Self = { raftAddress: await address('127.0.65.2'), apiAddress: await address('127.0.65.2'), dataDir: join(root, 'm2') };
  let m2 = await start({ id: 'm2', join: m1.apiUrl, self: m2Self });
  const kept = join(m2Self.dataDir, 'cluster.json');
  expect(statSync(kept).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(kept, 'utf8'))).toEqual({ insecure: true, managers: [{ id: 'm2', ...m2Self }], ...expected });
  expect(said('m2', "runs with the cluster's settings as its leader runs them")).toBe(true);
  expect(said('m2', 'without a config file')).toBe(false);
  // Every manager answers the leader's: m2 passes the request on to m1.
  expect(await settingsVia(m2.apiUrl)).toEqual({ leaderId: 'm1', settings: expected });

  // Leading, m2 applies the settings it runs with: the cluster's, not the defaults.
  await eventually(async () => {
    const members = (await httpJson(m1.apiUrl, 'GET', '/v1/cluster/members')).body.members as { id: string; voter: boolean }[] | undefined;
    return members?.find((m) => m.id === 'm2')?.voter === true ? true : undefined;
  }, 30_000, 'm2 to become a voter');
  await transferTo(m1.apiUrl, 'm2');
  expect(await settingsVia(m1.apiUrl)).toEqual({ leaderId: 'm2', settings: expected });
  expect(said('m2', 'leading without a config file')).toBe(false);

  // Restarted from its data directory alone: the same config, from the file (a reload finds nothing changed).
  await stop(m2);
  m2 = await start({ id: 'm2', dataDir: m2Self.dataDir });
  expect(await m2.reload()).toEqual({ node: 'm2', applied: [], refused: [], ignored: [] });
  await transferTo(m1.apiUrl, 'm2');
  expect(await settingsVia(m1.apiUrl)).toEqual({ leaderId: 'm2', settings: expected });
  expect(said('m2', 'without a config file')).toBe(false);

  // A reload re-reads that file: a live key changed there is applied, and the leader m2 runs with it.
  const file = JSON.parse(readFileSync(kept, 'utf8')) as { tasks: Record<string, unknown> };
  writeFileSync(kept, JSON.stringify({ ...file, tasks: { ...file.tasks, workerTtlMs: 12_000 } }));
  expect(await m2.reload()).toEqual({ node: 'm2', applied: [{ key: 'tasks.workerTtlMs', from: 10_000, to: 12_000 }], refused: [], ignored: [] });
  expect((await settingsVia(m1.apiUrl)).settings).toMatchObject({ tasks: { workerTtlMs: 12_000 } });

  // A data directory that joined before the file was kept (none there): the defaults, said at start and on leading.
  await stop(m2);
  unlinkSync(kept);
  lines.set('m2', []);
  m2 = await start({ id: 'm2', self: m2Self });
  expect(said('m2', 'started without a config file')).toBe(true);
  expect(await m2.reload().catch((err: unknown) => err)).toMatchObject({ code: 'RELOAD_REFUSED' });
  await transferTo(m1.apiUrl, 'm2');
  expect((await settingsVia(m1.apiUrl)).settings).toMatchObject({ tasks: { workerTtlMs: 2000 }, raft: { heartbeatIntervalMs: 50 } });
  await eventually(async () => (said('m2', 'leading without a config file') ? true : undefined), 10_000, 'the warning on leading');
  // --data-dir alone needs the file.
  await stop(m2);
  const refused = await startManager({ id: 'm2', dataDir: m2Self.dataDir, logger: pino({ level: 'silent' }) }).catch((err: unknown) => err);
  expect(refused).toBeInstanceOf(MinkubeError);
  expect((refused as MinkubeError).message).toBe(`${kept} does not exist: only a manager that joined from flags alone keeps its config there; start this one with --raft-address, --api-address and --data-dir, or with --config FILE`);
}, 180_000);
