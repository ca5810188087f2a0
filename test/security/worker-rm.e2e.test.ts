// `minkube worker rm` cuts a worker off at once, end to end with real processes: a secure cluster, its worker stopped
// and removed, then started again with its old tls directory, is refused by the managers and exits 1 saying why and
// how to come back, without registering again; started with an emptied tls directory it gets a new certificate from
// the cluster folder's CA and registers again.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { eventually, ProcCluster } from '../support/cluster.js';

let c: ProcCluster;

beforeAll(async () => {
  c = await ProcCluster.create({
    managers: 1, workers: 1, workerRuntime: 'process', secure: true, hostPrefix: '127.0.63.',
    extra: { tasks: { workerHeartbeatIntervalMs: 200, workerTtlMs: 1500, lostGraceMs: 500, reconcileIntervalMs: 300 } },
  });
  c.startAll();
  await c.waitForLeader({ timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
});

const workerState = async (): Promise<string | undefined> => {
  const r = await c.http('m1', 'GET', '/v1/workers/w1');
  return r.status === 200 ? (r.body.state as string) : `HTTP ${r.status} ${r.body?.error?.code as string}`;
};

describe('worker rm in a secure cluster (real processes)', () => {
  it('a removed worker restarted with its old certificate exits 1 saying so; with an emptied tls directory it registers again', async () => {
    await eventually(async () => ((await workerState()) === 'ready' ? true : undefined), 60_000, 'w1 registered');
    const tlsDir = join(c.dir, 'w1', 'tls');
    const oldCert = readFileSync(join(tlsDir, 'node.crt'), 'utf8');

    await c.signal('w1', 'SIGTERM');
    await eventually(async () => ((await workerState()) === 'down' ? true : undefined), 60_000, 'w1 down');
    const credentials = { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json') };
    const rm = await eventually(async () => {
      const r = await runCli(['worker', 'rm', 'w1'], credentials);
      return r.code === 0 ? r : undefined;
    }, 30_000, 'worker rm w1');
    expect(rm.stdout.trim()).toBe('removed worker w1');

    // Its old tls directory: the certificate is kept at start (still current), and refused by the managers.
    const log = join(c.dir, 'w1.log');
    const logBefore = readFileSync(log, 'utf8').length;
    c.start('w1');
    const proc = c.node('w1').proc!;
    const exitCode = await new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const said = readFileSync(log, 'utf8').slice(logBefore);
    expect(exitCode, said).toBe(1);
    expect(readFileSync(join(tlsDir, 'node.crt'), 'utf8')).toBe(oldCert);
    expect(said).toMatch(/error: UNAUTHENTICATED: worker w1: its certificate was issued before worker w1 was removed from the cluster \(\d{4}-\d\d-\d\dT[^)]+Z\): a removed worker comes back only with a new certificate: empty its <dataDir>\/tls and start it again/);
    expect(said).toContain('this worker was removed from the cluster after its certificate was issued');
    expect(await workerState()).toBe('HTTP 404 WORKER_NOT_FOUND');

    // Emptied: the worker gets a new certificate from the CA beside the config, issued after the removal.
    rmSync(tlsDir, { recursive: true, force: true });
    c.start('w1');
    await eventually(async () => ((await workerState()) === 'ready' ? true : undefined), 60_000, 'w1 registered again');
    expect(readFileSync(join(tlsDir, 'node.crt'), 'utf8')).not.toBe(oldCert);
    expect(c.node('w1').proc).not.toBeNull();
  }, 240_000);
});
