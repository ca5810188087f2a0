// A reload re-reads the operator's API certificate (api.tlsCertFile/tlsKeyFile) into a live HTTPS server: a
// certificate renewed in place is served to new connections, a pair that does not load is refused and the old one
// kept, and removing the keys goes back to the node's own. api.tlsCaFile, the CA(s) a node's client trusts for such a
// certificate, is re-read the same way.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClusterConfig } from '../../src/config/cluster.js';
import { Reloader } from '../../src/daemon/reload.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-reload-tls-'));
const configPath = join(dir, 'cluster.json');
const base = { managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1' }] };
let ca: Awaited<ReturnType<typeof createClusterCa>>;
let server: Server;
let port: number;

const issue = () => issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'api', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
const fingerprint = (pem: string) => `sha256:${new X509Certificate(pem).fingerprint256}`;

/** The certificate a new connection is shown. */
function served(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.end();
      resolve(`sha256:${raw!.fingerprint256}`);
    });
    socket.on('error', reject);
  });
}

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reloading the API certificate', () => {
  it('serves a certificate renewed in place, keeps the old one for a bad pair, and goes back to the own one', async () => {
    const own = await issue();
    const first = await issue();
    writeFileSync(join(dir, 'api.crt'), first.certPem);
    writeFileSync(join(dir, 'api.key'), first.keyPem);
    writeFileSync(configPath, JSON.stringify({ ...base, api: { tlsCertFile: 'api.crt', tlsKeyFile: 'api.key' } }));
    server = createServer({ cert: first.certPem, key: first.keyPem });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    const reloader = new Reloader({
      node: 'manager', id: 'm1', configPath, running: await loadClusterConfig(configPath), logger: pino({ level: 'silent' }), loggers: [],
      applyApiTls: (cert, key) => server.setSecureContext({ cert, key }),
      restoreOwnTls: () => server.setSecureContext({ cert: own.certPem, key: own.keyPem }),
    });
    reloader.noteCertificate(first.certPem);
    expect(await served()).toBe(fingerprint(first.certPem));
    // Nothing changed: nothing to report.
    expect(await reloader.reload()).toEqual({ node: 'm1', applied: [], refused: [], ignored: [] });

    const second = await issue();
    writeFileSync(join(dir, 'api.crt'), second.certPem);
    writeFileSync(join(dir, 'api.key'), second.keyPem);
    expect((await reloader.reload()).applied).toEqual([{ key: 'api.tlsCertFile', from: fingerprint(first.certPem), to: fingerprint(second.certPem) }]);
    expect(await served()).toBe(fingerprint(second.certPem));

    // Both paths changed: the certificate's entry with fingerprints, the key's with the paths.
    const renamed = await issue();
    writeFileSync(join(dir, 'api2.crt'), renamed.certPem);
    writeFileSync(join(dir, 'api2.key'), renamed.keyPem);
    writeFileSync(configPath, JSON.stringify({ ...base, api: { tlsCertFile: 'api2.crt', tlsKeyFile: 'api2.key' } }));
    expect((await reloader.reload()).applied).toEqual([
      { key: 'api.tlsCertFile', from: fingerprint(second.certPem), to: fingerprint(renamed.certPem) },
      { key: 'api.tlsKeyFile', from: join(dir, 'api.key'), to: join(dir, 'api2.key') },
    ]);
    expect(await served()).toBe(fingerprint(renamed.certPem));
    writeFileSync(configPath, JSON.stringify({ ...base, api: { tlsCertFile: 'api.crt', tlsKeyFile: 'api.key' } }));
    expect((await reloader.reload()).applied).toEqual([
      { key: 'api.tlsCertFile', from: fingerprint(renamed.certPem), to: fingerprint(second.certPem) },
      { key: 'api.tlsKeyFile', from: join(dir, 'api2.key'), to: join(dir, 'api.key') },
    ]);

    // A key path whose key is not the certificate's: refused, and not taken as running: once the file names api.key
    // again (and the pair is renewed in place), the key path is the one the node runs, so it has no entry.
    writeFileSync(join(dir, 'other.key'), (await issue()).keyPem);
    writeFileSync(configPath, JSON.stringify({ ...base, api: { tlsCertFile: 'api.crt', tlsKeyFile: 'other.key' } }));
    const mismatched = await reloader.reload();
    expect(mismatched.applied).toEqual([]);
    expect(mismatched.refused).toEqual([
      { key: 'api.tlsCertFile', reason: expect.stringContaining('keeps the current one') as string },
      { key: 'api.tlsKeyFile', reason: expect.stringContaining('keeps the current one') as string },
    ]);
    expect(await served()).toBe(fingerprint(second.certPem));
    const renewed = await issue();
    writeFileSync(join(dir, 'api.crt'), renewed.certPem);
    writeFileSync(join(dir, 'api.key'), renewed.keyPem);
    writeFileSync(configPath, JSON.stringify({ ...base, api: { tlsCertFile: 'api.crt', tlsKeyFile: 'api.key' } }));
    expect(await reloader.reload()).toEqual({ node: 'm1', applied: [{ key: 'api.tlsCertFile', from: fingerprint(second.certPem), to: fingerprint(renewed.certPem) }], refused: [], ignored: [] });
    expect(await served()).toBe(fingerprint(renewed.certPem));

    // A certificate with another's key: refused, the server keeps the renewed one.
    const third = await issue();
    writeFileSync(join(dir, 'api.crt'), third.certPem);
    const refused = await reloader.reload();
    expect(refused.refused).toEqual([{ key: 'api.tlsCertFile', reason: expect.stringContaining('keeps the current one') as string }]);
    expect(await served()).toBe(fingerprint(renewed.certPem));

    writeFileSync(configPath, JSON.stringify(base));
    const back = await reloader.reload();
    expect(back.applied).toEqual([{ key: 'api.tlsCertFile', from: fingerprint(renewed.certPem), to: null }, { key: 'api.tlsKeyFile', from: join(dir, 'api.key'), to: null }]);
    expect(await served()).toBe(fingerprint(own.certPem));
  });

  it("re-reads api.tlsCaFile into the node's client (a worker's too): added, rotated in place, unreadable (kept), removed", async () => {
    const caConfig = join(dir, 'ca-cluster.json');
    const workerBase = { ...base, workers: [{ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' }] };
    writeFileSync(caConfig, JSON.stringify(workerBase));
    const trusted: (string | undefined)[] = [];
    const running = await loadClusterConfig(caConfig);
    const reloader = new Reloader({
      node: 'worker', id: 'w1', configPath: caConfig, running, logger: pino({ level: 'silent' }), loggers: [],
      applyApiCa: (caPem) => trusted.push(caPem),
    });
    const [corp, next] = [await createClusterCa({ clusterId: 'corp' }), await createClusterCa({ clusterId: 'corp' })];
    writeFileSync(join(dir, 'corp-ca.crt'), corp.certPem);
    writeFileSync(caConfig, JSON.stringify({ ...workerBase, api: { tlsCaFile: 'corp-ca.crt' } }));
    expect(await reloader.reload()).toEqual({ node: 'w1', applied: [{ key: 'api.tlsCaFile', from: null, to: fingerprint(corp.certPem) }], refused: [], ignored: [] });
    expect(trusted).toEqual([`${corp.certPem}\n`]);
    // The same file again: nothing to report; rotated in place (two CAs now): applied.
    expect((await reloader.reload()).applied).toEqual([]);
    writeFileSync(join(dir, 'corp-ca.crt'), `${corp.certPem}\n${next.certPem}\n`);
    expect((await reloader.reload()).applied).toEqual([{ key: 'api.tlsCaFile', from: fingerprint(corp.certPem), to: `${fingerprint(corp.certPem)}, ${fingerprint(next.certPem)}` }]);
    writeFileSync(join(dir, 'corp-ca.crt'), 'not a certificate');
    const refused = await reloader.reload();
    expect(refused.refused).toEqual([{ key: 'api.tlsCaFile', reason: expect.stringMatching(/holds no PEM certificate; the node keeps trusting what it trusted$/) as string }]);
    expect(trusted).toHaveLength(2);
    // A path to no file: refused, and the config the node's parts read keeps the path it runs with.
    writeFileSync(caConfig, JSON.stringify({ ...workerBase, api: { tlsCaFile: 'missing-ca.crt' } }));
    expect((await reloader.reload()).refused).toEqual([{ key: 'api.tlsCaFile', reason: expect.stringContaining('the node keeps trusting what it trusted') as string }]);
    expect(running.api.tlsCaFile).toBe(join(dir, 'corp-ca.crt'));
    writeFileSync(caConfig, JSON.stringify(workerBase));
    expect((await reloader.reload()).applied).toEqual([{ key: 'api.tlsCaFile', from: `${fingerprint(corp.certPem)}, ${fingerprint(next.certPem)}`, to: null }]);
    expect(trusted.at(-1)).toBeUndefined();
  });

  it('refuses a reload with no file to read (409 RELOAD_REFUSED)', async () => {
    const reloader = new Reloader({ node: 'worker', id: 'w1', configPath: null, running: await loadClusterConfig(configPath), logger: pino({ level: 'silent' }), loggers: [] });
    await expect(reloader.reload()).rejects.toMatchObject({ code: 'RELOAD_REFUSED', status: 409 });
  });
});
