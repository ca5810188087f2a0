// TLS material on disk: a node's tls directory, and local provisioning of a whole cluster from its config directory,
// including several processes provisioning the same cluster at the same moment.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { certificateLifetimeMs, createClusterCa, isIssuedBy, issueNodeKeyAndCert, subjectAltNames } from '../../src/security/ca.js';
import {
  adminTokenPending, clearAdminTokenPending, ensureLocalPki, readApiCaFile, readNodeTls, sansForAddresses, writeNodeTls, type LocalNode,
} from '../../src/security/pki-files.js';
import { newApiToken, parseApiToken } from '../../src/security/tokens.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mk-pki-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const node = (id: string, role: LocalNode['role'], addresses = ['127.0.0.1:7000']): LocalNode => ({ id, role, dataDir: join(dir, id), addresses });
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe('a node\'s tls directory', () => {
  it('is null when empty, and reads back what was written with keys private to the owner', async () => {
    expect(await readNodeTls(join(dir, 'n1'))).toBeNull();
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { keyPem, certPem } = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans: sansForAddresses([]) });
    await writeNodeTls(join(dir, 'n1'), { caCertPem: ca.certPem, certPem, keyPem, caKeyPem: ca.keyPem, identity: { id: 'm1', role: 'manager', clusterId: 'c1' } });
    const tls = await readNodeTls(join(dir, 'n1'));
    expect(tls).toEqual({ caCertPem: ca.certPem, certPem, keyPem, caKeyPem: ca.keyPem, identity: { id: 'm1', role: 'manager', clusterId: 'c1' } });
    expect(await modeOf(join(dir, 'n1', 'tls', 'node.key'))).toBe(0o600);
    expect(await modeOf(join(dir, 'n1', 'tls', 'ca.key'))).toBe(0o600);
  });

  it('refuses a key that does not go with its certificate', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const opts = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'w1', role: 'worker' as const, clusterId: 'c1', sans: sansForAddresses([]) };
    const [a, b] = await Promise.all([issueNodeKeyAndCert(opts), issueNodeKeyAndCert(opts)]);
    await writeNodeTls(dir, { caCertPem: ca.certPem, certPem: a.certPem, keyPem: b.keyPem, identity: { id: 'w1', role: 'worker', clusterId: 'c1' } });
    await expect(readNodeTls(dir)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
  });
});

describe('readApiCaFile (api.tlsCaFile)', () => {
  it('reads every certificate of the file, and refuses a missing file, one without a certificate or with a broken one', async () => {
    const [a, b] = [await createClusterCa({ clusterId: 'corp' }), await createClusterCa({ clusterId: 'corp2' })];
    const bundle = join(dir, 'bundle.crt');
    await writeFile(bundle, `# the corporate CAs\n${a.certPem}\n${b.certPem}\n`);
    expect(await readApiCaFile(bundle)).toBe(`${a.certPem}\n${b.certPem}\n`);
    await expect(readApiCaFile(join(dir, 'none.crt'))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `api.tlsCaFile: cannot read ${join(dir, 'none.crt')} (ENOENT)` });
    await writeFile(join(dir, 'key.pem'), a.keyPem);
    await expect(readApiCaFile(join(dir, 'key.pem'))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `api.tlsCaFile: ${join(dir, 'key.pem')} holds no PEM certificate` });
    await writeFile(join(dir, 'broken.crt'), `${a.certPem}\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`);
    await expect(readApiCaFile(join(dir, 'broken.crt'))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(`api.tlsCaFile: certificate 2 of ${join(dir, 'broken.crt')} cannot be read`) as string });
  });
});

describe('sansForAddresses', () => {
  it('takes the host of each address, IPv4, IPv6 or a name, plus localhost and 127.0.0.1', () => {
    expect(sansForAddresses(['10.0.0.5:7000', '[fd00::1]:7001', 'm1.example:7002', 'm1.example:7003', '::1'])).toEqual({
      ips: ['127.0.0.1', '10.0.0.5', 'fd00::1', '::1'],
      dns: ['localhost', 'm1.example'],
    });
  });
});

describe('ensureLocalPki', () => {
  it('creates a CA once and gives each node a certificate from it; managers also get the CA key', async () => {
    const clusterDir = join(dir, '.minkube');
    const nodes = [node('m1', 'manager', ['10.1.2.3:7000']), node('w1', 'worker', ['w1.example:7100'])];
    const first = await ensureLocalPki({ clusterDir, nodes });
    expect(first.created).toBe(true);
    expect(first.clusterId).toMatch(/^mk-[0-9a-f]{12}$/);
    expect((await readFile(join(clusterDir, 'cluster-id'), 'utf8')).trim()).toBe(first.clusterId);
    expect(await modeOf(join(clusterDir, 'ca.key'))).toBe(0o600);

    const m1 = (await readNodeTls(nodes[0]!.dataDir))!;
    const w1 = (await readNodeTls(nodes[1]!.dataDir))!;
    expect(m1.identity).toEqual({ id: 'm1', role: 'manager', clusterId: first.clusterId });
    expect(m1.caKeyPem).toBe(await readFile(join(clusterDir, 'ca.key'), 'utf8'));
    expect(w1.caKeyPem).toBeUndefined();
    expect(await isIssuedBy(w1.certPem, first.caCertPem)).toBe(true);
    expect(subjectAltNames(m1.certPem)).toEqual({ ips: ['127.0.0.1', '10.1.2.3'], dns: ['localhost'] });
    expect(subjectAltNames(w1.certPem).dns).toEqual(['localhost', 'w1.example']);

    // A second run keeps everything that is still good.
    const second = await ensureLocalPki({ clusterDir, nodes });
    expect(second).toEqual({ ...first, created: false });
    expect((await readNodeTls(nodes[0]!.dataDir))!.certPem).toBe(m1.certPem);
  });

  it('replaces a node certificate from another CA, for another role, or missing a new address', async () => {
    const clusterDir = join(dir, '.minkube');
    const w1 = node('w1', 'worker');
    const { clusterId, caCertPem } = await ensureLocalPki({ clusterDir, nodes: [w1] });
    const before = (await readNodeTls(w1.dataDir))!;

    const other = await createClusterCa({ clusterId });
    const stranger = await issueNodeKeyAndCert({ caCertPem: other.certPem, caKeyPem: other.keyPem, id: 'w1', role: 'worker', clusterId, sans: sansForAddresses([]) });
    await writeNodeTls(w1.dataDir, { caCertPem: other.certPem, ...stranger, identity: { id: 'w1', role: 'worker', clusterId } });
    await ensureLocalPki({ clusterDir, nodes: [w1] });
    const replaced = (await readNodeTls(w1.dataDir))!;
    expect(replaced.caCertPem).toBe(caCertPem);
    expect(await isIssuedBy(replaced.certPem, caCertPem)).toBe(true);
    expect(replaced.certPem).not.toBe(before.certPem);

    await ensureLocalPki({ clusterDir, nodes: [{ ...w1, role: 'manager' }] });
    expect((await readNodeTls(w1.dataDir))!.identity.role).toBe('manager');

    await ensureLocalPki({ clusterDir, nodes: [{ ...w1, role: 'manager', addresses: ['10.9.9.9:7000'] }] });
    expect(subjectAltNames((await readNodeTls(w1.dataDir))!.certPem).ips).toContain('10.9.9.9');
  });

  it('issues with certLifetimeS (default 90 days), keeps a certificate as long or shorter, replaces a longer one', async () => {
    const clusterDir = join(dir, '.minkube');
    const m1 = node('m1', 'manager');
    const lifetimeOf = async (): Promise<number> => certificateLifetimeMs((await readNodeTls(m1.dataDir))!.certPem);
    await ensureLocalPki({ clusterDir, nodes: [m1] });
    expect(await lifetimeOf()).toBe(90 * 86_400_000);
    // Lowered: the 90-day certificate is replaced at once, not in 60 days.
    await ensureLocalPki({ clusterDir, nodes: [m1], certLifetimeS: 3600 });
    expect(await lifetimeOf()).toBe(3_600_000);
    const short = (await readNodeTls(m1.dataDir))!.certPem;
    await ensureLocalPki({ clusterDir, nodes: [m1], certLifetimeS: 3600 });
    // Raised: the shorter one is kept until it is due (renewal brings the new lifetime).
    await ensureLocalPki({ clusterDir, nodes: [m1], certLifetimeS: 7200 });
    expect((await readNodeTls(m1.dataDir))!.certPem).toBe(short);
  });

  it('a damaged CA beside the config (a certificate that does not parse, a key of another CA) is STORAGE_CORRUPT naming the file', async () => {
    const clusterDir = join(dir, '.minkube');
    await ensureLocalPki({ clusterDir, nodes: [] });
    const [certPem, keyPem] = await Promise.all([readFile(join(clusterDir, 'ca.crt'), 'utf8'), readFile(join(clusterDir, 'ca.key'), 'utf8')]);
    await writeFile(join(clusterDir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await expect(ensureLocalPki({ clusterDir, nodes: [] })).rejects.toMatchObject({
      code: 'STORAGE_CORRUPT', message: expect.stringMatching(new RegExp(`^${join(clusterDir, 'ca.crt')} cannot be read as a certificate \\(.*\\): the cluster CA beside the config is damaged`)) as string,
    });
    await writeFile(join(clusterDir, 'ca.crt'), certPem);
    await writeFile(join(clusterDir, 'ca.key'), (await createClusterCa({ clusterId: 'other' })).keyPem);
    await expect(ensureLocalPki({ clusterDir, nodes: [] })).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining(`${join(clusterDir, 'ca.key')} is not the key of ${join(clusterDir, 'ca.crt')}`) as string });
    await writeFile(join(clusterDir, 'ca.key'), keyPem);
    expect((await ensureLocalPki({ clusterDir, nodes: [] })).created).toBe(false);
  });

  it('makes an admin token with a new CA, marked pending until cleared; a CA made beside a kept token marks nothing', async () => {
    const clusterDir = join(dir, '.minkube');
    await ensureLocalPki({ clusterDir, nodes: [] });
    const token = (await readFile(join(clusterDir, 'admin.token'), 'utf8')).trim();
    expect(parseApiToken(token)).not.toBeNull();
    expect(await modeOf(join(clusterDir, 'admin.token'))).toBe(0o600);
    expect(await adminTokenPending(clusterDir, token)).toBe(true);
    expect(await adminTokenPending(clusterDir, newApiToken().token)).toBe(false);
    // Another start keeps the token and its mark.
    await ensureLocalPki({ clusterDir, nodes: [] });
    expect((await readFile(join(clusterDir, 'admin.token'), 'utf8')).trim()).toBe(token);
    expect(await adminTokenPending(clusterDir, token)).toBe(true);
    await clearAdminTokenPending(clusterDir);
    expect(await adminTokenPending(clusterDir, token)).toBe(false);
    await clearAdminTokenPending(clusterDir);

    // Only the CA moved aside: the new CA keeps the folder's token, which is not the new CA's, so it stays unmarked.
    for (const f of ['ca.crt', 'ca.key']) await rename(join(clusterDir, f), join(dir, f));
    expect((await ensureLocalPki({ clusterDir, nodes: [] })).created).toBe(true);
    expect((await readFile(join(clusterDir, 'admin.token'), 'utf8')).trim()).toBe(token);
    expect(await adminTokenPending(clusterDir, token)).toBe(false);
  });

  it('creates exactly one CA when many callers race, and every node gets a certificate from it', async () => {
    const clusterDir = join(dir, '.minkube');
    const nodes = Array.from({ length: 12 }, (_, i) => node(`m${i}`, 'manager'));
    const results = await Promise.all(nodes.map((n) => ensureLocalPki({ clusterDir, nodes: [n] })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.caCertPem)).size).toBe(1);
    expect(new Set(results.map((r) => r.clusterId)).size).toBe(1);
    for (const n of nodes) expect(await isIssuedBy((await readNodeTls(n.dataDir))!.certPem, results[0]!.caCertPem)).toBe(true);
  });

  it('creates exactly one CA when separate processes start at the same moment', async () => {
    const clusterDir = join(dir, '.minkube');
    const fixture = fileURLToPath(new URL('./fixtures/ensure-pki.ts', import.meta.url));
    const run = (id: string) =>
      new Promise<{ created: boolean; caCertPem: string }>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', fixture, clusterDir, id, join(dir, id)], { timeout: 30_000 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`${id}: ${err.message}\n${stderr}`));
          else resolve(JSON.parse(stdout) as { created: boolean; caCertPem: string });
        });
      });
    const results = await Promise.all(['m1', 'm2', 'm3'].map(run));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.caCertPem)).size).toBe(1);
    for (const id of ['m1', 'm2', 'm3']) expect((await readNodeTls(join(dir, id)))!.caCertPem).toBe(results[0]!.caCertPem);
    // One admin token, made with the CA and marked pending.
    expect(await adminTokenPending(clusterDir, (await readFile(join(clusterDir, 'admin.token'), 'utf8')).trim())).toBe(true);
  }, 60_000);

  it('takes over a lock left by a process that has exited', async () => {
    const clusterDir = join(dir, '.minkube');
    const child = spawn(process.execPath, ['-e', '']);
    await once(child, 'exit');
    await ensureLocalPki({ clusterDir, nodes: [] });
    await writeFile(join(clusterDir, 'pki.lock'), `${child.pid} deadbeef\n`);
    const result = await ensureLocalPki({ clusterDir, nodes: [node('w1', 'worker')] });
    expect(await readNodeTls(join(dir, 'w1'))).not.toBeNull();
    expect(result.created).toBe(false);
    await expect(stat(join(clusterDir, 'pki.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes over a lock older than any holder could keep it, even of a live process', async () => {
    const clusterDir = join(dir, '.minkube');
    await ensureLocalPki({ clusterDir, nodes: [] });
    const lock = join(clusterDir, 'pki.lock');
    await writeFile(lock, `${process.pid} cafe\n`);
    const old = new Date(Date.now() - 10 * 60_000);
    await utimes(lock, old, old);
    expect((await ensureLocalPki({ clusterDir, nodes: [] })).created).toBe(false);
  });
});
