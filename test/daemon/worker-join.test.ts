// `minkube worker --join`: the config a worker keeps is checked before anything is written, so a refused one leaves
// the data directory as it was; a rerun with corrected flags joins with them; a restart with the flags it joined
// with asks the cluster nothing (its token may have expired by then).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { JoinRequest } from '../../src/contracts/services.js';
import { joinAsWorker } from '../../src/daemon/worker.js';
import type { Clock } from '../../src/lib/clock.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { readNodeTls } from '../../src/security/pki-files.js';
import { newJoinToken } from '../../src/security/tokens.js';
import { FakeManagerService } from '../api/fake-service.js';

const clock: Clock = { nowMs: () => Date.now(), monoMs: () => performance.now(), setTimeout: () => ({ cancel: () => undefined }) };
/** The one manager the cluster reports; its API address is the one a worker's flags collide with below. */
const managers = [{ id: 'm1', raftAddress: '127.0.0.1:9100', apiAddress: '127.0.0.1:9101' }];
const validTokens = new Set<string>();
const joins: JoinRequest[] = [];
let app: FastifyInstance;
let url: string;
let token: string;
let dir: string;

beforeAll(async () => {
  const ca = await createClusterCa({ clusterId: 'c1' });
  const m1 = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
  const service = new JoinServiceImpl({
    material: { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...m1, identity: { id: 'm1', role: 'manager', clusterId: 'c1' } },
    clock,
    joinToken: (secretHash, nowMs) => (validTokens.has(secretHash) ? { secretHash, role: 'worker', createdAtMs: nowMs, expiresAtMs: nowMs + 60_000 } : undefined),
    managers: () => managers,
    worker: () => undefined,
  });
  const counted = Object.assign(Object.create(service) as JoinServiceImpl, {
    join: (req: JoinRequest) => {
      joins.push(req);
      return service.join(req);
    },
  });
  app = buildManagerApp({ service: new FakeManagerService(), join: counted, https: { key: m1.keyPem, cert: m1.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const made = newJoinToken(ca.certPem);
  token = made.token;
  validTokens.add(made.secretHash);
});
afterAll(() => app.close());
beforeEach(async () => {
  joins.length = 0;
  dir = await mkdtemp(join(tmpdir(), 'minkube-worker-join-'));
  return () => rm(dir, { recursive: true, force: true });
});

const flags = (apiAddress: string, more: { labels?: Record<string, string>; token?: string } = {}) => ({ url, token: more.token ?? token, apiAddress, dataDir: dir, runtime: 'process', ...(more.labels === undefined ? {} : { labels: more.labels }) });
type KeptConfig = { workers: { id: string; apiAddress: string; labels?: Record<string, string> }[] };
const keptConfig = async (): Promise<KeptConfig> => JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as KeptConfig;

describe('worker --join', () => {
  it("an --api-address the cluster's managers use is refused before anything is written; the corrected rerun joins with it", async () => {
    // The cluster refuses to sign a worker's certificate for it (POST /v1/join), before the config is checked.
    const refused = joinAsWorker('w7', flags('127.0.0.1:9101'));
    await expect(refused).rejects.toMatchObject({ code: 'WORKER_ADDRESS_IN_USE', message: "--api-address 127.0.0.1:9101: the cluster refuses it: body.addresses[0]: 127.0.0.1:9101 is manager m1's apiAddress: a worker's certificate may name only the worker's own addresses" });
    expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
    expect(await readNodeTls(dir)).toBeNull();

    await joinAsWorker('w7', flags('127.0.0.1:9102'));
    expect((await keptConfig()).workers[0]).toMatchObject({ id: 'w7', apiAddress: '127.0.0.1:9102', runtime: 'process' });
    // Readable by this user only, as a manager's joined config, and written whole (no temporary file left beside it).
    expect(statSync(join(dir, 'cluster.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect((await readNodeTls(dir))?.identity).toEqual({ id: 'w7', role: 'worker', clusterId: 'c1' });
  });

  it('a restart with the flags it joined with asks the cluster nothing, even once its token is gone', async () => {
    await joinAsWorker('w8', flags('127.0.0.1:9103', { labels: { zone: 'a', disk: 'ssd' } }));
    expect(joins).toHaveLength(1);
    const before = await readFile(join(dir, 'cluster.json'), 'utf8');
    await joinAsWorker('w8', flags('127.0.0.1:9103', { labels: { disk: 'ssd', zone: 'a' }, token: newJoinToken((await readNodeTls(dir))!.caCertPem).token }));
    expect(joins).toHaveLength(1);
    expect(await readFile(join(dir, 'cluster.json'), 'utf8')).toBe(before);
  });

  it('a data directory joined with other flags (a start that failed later, say) joins again with the new ones', async () => {
    await joinAsWorker('w9', flags('127.0.0.1:9104'));
    await joinAsWorker('w9', flags('127.0.0.1:9105'));
    expect(joins).toHaveLength(2);
    expect((await keptConfig()).workers[0]?.apiAddress).toBe('127.0.0.1:9105');
  });

  it('when joining again is refused, the kept config stays and the error says how to start it', async () => {
    await joinAsWorker('w10', flags('127.0.0.1:9106'));
    const unknown = newJoinToken((await readNodeTls(dir))!.caCertPem).token;
    const refused = joinAsWorker('w10', flags('127.0.0.1:9107', { token: unknown }));
    await expect(refused).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/^unknown, revoked or expired join token; .*cluster\.json is kept as it was \(--api-address 127\.0\.0\.1:9106\): to start that one, minkube worker --id w10 --data-dir /) as string });
    expect((await keptConfig()).workers[0]?.apiAddress).toBe('127.0.0.1:9106');
  });

  it('what the flags alone get wrong is refused before the cluster is asked', async () => {
    const port = new URL(url).port;
    await expect(joinAsWorker('w11', flags(`127.0.0.1:${port}`))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `--api-address 127.0.0.1:${port} is the address of the manager --join names: a worker needs an address of its own` });
    await expect(joinAsWorker('w11', flags('127.0.0.1'))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/^--api-address: expected host:port/) as string });
    await expect(joinAsWorker('w11', { ...flags('127.0.0.1:9108'), runtime: 'podman' })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: '--runtime must be docker, process or auto, not podman' });
    expect(joins).toHaveLength(0);
    expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
  });
});
