// The operator's API certificate end to end, in process (a real manager and a real worker, TLS and tokens on, on
// 127.0.40.x): after a reload the manager serves it, and the CLI (a real process, with the credentials file the
// manager wrote) and a restarted worker reach it: one the cluster CA signed with the manager's address as its SAN,
// then one of another CA that api.tlsCaFile names (the worker trusts it from a reload and from its config at start;
// the CLI once the credentials file's apiCa holds it).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliTls } from '../../src/cli/connection.js';
import { HttpClient } from '../../src/client/http.js';
import { loadClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { startWorkerFromConfig, type RunningWorker } from '../../src/daemon/worker.js';
import { clusterIdOfCa, createClusterCa } from '../../src/security/ca.js';
import { runCli } from '../support/cli.js';
import { operatorCertificate } from '../support/operator-cert.js';
import { freePortIn, waitFor } from '../support/wait.js';

const managerHost = '127.0.40.1';
const workerHost = '127.0.40.2';
const logger = pino({ level: process.env.MINKUBE_TEST_LOG ?? 'silent' });
let dir: string;
let configPath: string;
let base: Record<string, unknown>;
let apiAddress: string;
let manager: RunningManager | undefined;
let worker: RunningWorker | undefined;
let credentialsPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'minkube-operator-cert-'));
  configPath = join(dir, 'cluster.json');
  apiAddress = `${managerHost}:${await freePortIn(managerHost, 40000, 40999)}`;
  base = {
    managers: [{ id: 'm1', raftAddress: `${managerHost}:${await freePortIn(managerHost, 40000, 40999)}`, apiAddress, dataDir: 'm1' }],
    workers: [{ id: 'w1', apiAddress: `${workerHost}:${await freePortIn(workerHost, 40000, 40999)}`, runtime: 'process', dataDir: 'w1' }],
    raft: { heartbeatIntervalMs: 25, electionTimeoutMs: 200 },
    tasks: { workerHeartbeatIntervalMs: 100, workerTtlMs: 600, lostGraceMs: 300, reconcileIntervalMs: 300 },
  };
  writeConfig({});
  manager = await startManagerFromConfig(await loadClusterConfig(configPath), 'm1', logger, { configPath });
  credentialsPath = join(dir, '.minkube', 'credentials.json');
  worker = await startWorker();
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await manager?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(api: Record<string, string>): void {
  writeFileSync(configPath, JSON.stringify({ ...base, api }, null, 2));
}

function startWorker(): Promise<RunningWorker> {
  return loadClusterConfig(configPath).then((config) => startWorkerFromConfig(config, 'w1', logger, {}, { configPath }));
}

/** The subject of the certificate a new connection to the manager's API is shown. */
function servedSubject(): Promise<string> {
  const [host, port] = apiAddress.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.subject);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/**
 * Restarts the worker (new connections, its config read again) and waits until the manager lists it ready, asked
 * by a client that trusts the cluster CA and apiCaPem.
 */
async function restartWorkerUntilReady(apiCaPem?: string): Promise<void> {
  await worker?.stop();
  worker = undefined;
  worker = await startWorker();
  const started = worker;
  await waitFor('the restarted worker to register and heartbeat', () => started.loops.isRegistered && started.loops.heartbeatsSent >= 2, 30_000, 50);
  const ca = readFileSync(join(dir, '.minkube', 'ca.crt'), 'utf8');
  const token = readFileSync(join(dir, '.minkube', 'admin.token'), 'utf8').trim();
  const http = new HttpClient({ tls: cliTls(ca, clusterIdOfCa(ca)!), token, ...(apiCaPem === undefined ? {} : { apiCaPem }) });
  try {
    await waitFor('the manager to list w1 ready', async () => {
      const res = await http.requestOk({ method: 'GET', url: `https://${apiAddress}`, path: '/v1/workers' });
      return (JSON.parse(res.text) as { items: { id: string; state: string }[] }).items.some((w) => w.id === 'w1' && w.state === 'ready');
    }, 30_000, 100);
  } finally {
    await http.close();
  }
}

describe("a manager serving the operator's API certificate", () => {
  it('signed by the cluster CA: the CLI and a restarted worker reach it after a reload', async () => {
    await waitFor('the worker to register', () => worker!.loops.isRegistered, 30_000, 50);
    const clusterCa = { certPem: readFileSync(join(dir, '.minkube', 'ca.crt'), 'utf8'), keyPem: readFileSync(join(dir, '.minkube', 'ca.key'), 'utf8') };
    const api = operatorCertificate({ ca: clusterCa, ips: [managerHost] });
    writeFileSync(join(dir, 'api.crt'), api.certPem);
    writeFileSync(join(dir, 'api.key'), api.keyPem);
    writeConfig({ tlsCertFile: 'api.crt', tlsKeyFile: 'api.key' });
    const report = await manager!.reload();
    expect(report.refused).toEqual([]);
    expect(report.applied.map((a) => a.key)).toContain('api.tlsCertFile');
    expect(await servedSubject()).toBe('CN=operator-api');

    const status = await runCli(['status'], { MINKUBE_CONFIG: credentialsPath });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('m1');
    await restartWorkerUntilReady();
  });

  it('signed by another CA: refused until trusted (api.tlsCaFile for the worker, apiCa for the CLI), then reached', async () => {
    const corpCa = await createClusterCa({ clusterId: 'corp' });
    writeFileSync(join(dir, 'corp-ca.crt'), corpCa.certPem);
    const api = operatorCertificate({ ca: corpCa, ips: [managerHost] });
    writeFileSync(join(dir, 'corp-api.crt'), api.certPem);
    writeFileSync(join(dir, 'corp-api.key'), api.keyPem);
    writeConfig({ tlsCertFile: 'corp-api.crt', tlsKeyFile: 'corp-api.key', tlsCaFile: 'corp-ca.crt' });
    // The worker first, so that it trusts the new certificate before the manager serves it.
    const workerReport = await worker!.reload();
    expect(workerReport.applied.map((a) => a.key)).toEqual(['api.tlsCaFile']);
    const report = await manager!.reload();
    expect(report.refused).toEqual([]);
    expect(report.applied.map((a) => a.key)).toEqual(expect.arrayContaining(['api.tlsCertFile', 'api.tlsCaFile']));
    expect(await servedSubject()).toBe('CN=operator-api');

    // The credentials file the manager wrote at start has no apiCa: the CLI says which trust is missing.
    const refused = await runCli(['status'], { MINKUBE_CONFIG: credentialsPath });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("TLS: the server's certificate is refused: no CA this client trusts signed it");
    const trusting = join(dir, 'credentials-corp.json');
    writeFileSync(trusting, JSON.stringify({ ...(JSON.parse(readFileSync(credentialsPath, 'utf8')) as object), apiCa: corpCa.certPem }));
    const status = await runCli(['status'], { MINKUBE_CONFIG: trusting });
    expect(status.code, status.stderr).toBe(0);
    await restartWorkerUntilReady(corpCa.certPem);
  });
});
