// A joined worker whose certificate expired cannot renew it (the renewal needs a valid one): it stops at start with
// CONFIG_INVALID saying to join again, instead of retrying for ever while the managers show it down.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { writeNodeTls } from '../../src/security/pki-files.js';
import { runCli } from '../support/cli.js';
import { freePort } from '../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-expired-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a joined worker with an expired certificate', () => {
  it('exits 1 with CONFIG_INVALID naming the expiry and how to join again', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const identity = { id: 'w9', role: 'worker' as const, clusterId: 'c1' };
    const longAgo = new Date(Date.now() - 10 * 86_400_000);
    const { keyPem, certPem } = await issueNodeKeyAndCert({ ...identity, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { dns: ['localhost'], ips: ['127.0.0.1'] }, lifetimeDays: 1, now: longAgo });
    const dataDir = join(dir, 'w9');
    await writeNodeTls(dataDir, { caCertPem: ca.certPem, certPem, keyPem, identity });
    // What a join leaves beside the certificate: the config the worker keeps.
    const apiAddress = `127.0.0.1:${await freePort()}`;
    const managers = [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: 'unused-m1' }];
    writeFileSync(join(dataDir, 'cluster.json'), JSON.stringify({ managers, workers: [{ id: 'w9', apiAddress, runtime: 'process', dataDir }] }));
    const r = await runCli(['worker', '--id', 'w9', '--data-dir', dataDir], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: CONFIG_INVALID: the certificate in .*\/w9\/tls expired at \d{4}-.*an expired certificate cannot be renewed: move .*\/w9\/tls aside and join again/m);
  });
});
