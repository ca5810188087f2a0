// What POST /v1/join and POST /v1/certs/renew sign as a certificate's names: each address an IP address or a host
// name (RFC 1123 labels), with :port or without, at most limits.certAddressesMax; a worker never a manager's address.
// The outside test (bb41) got DNS:*.example.com and DNS:not an ip signed, and a worker's renewal naming the managers'
// hosts. Join goes through app.inject; renewal through the real HttpClient over mutual TLS (it reads the client
// certificate of the connection).
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { HttpClient, parseJson } from '../../src/client/http.js';
import { nodeSecurityFrom } from '../../src/daemon/security.js';
import type { Clock } from '../../src/lib/clock.js';
import { limits } from '../../src/lib/limits.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { createClusterCa, createCsr, generateNodeKey, identityFromCertificate, issueNodeKeyAndCert, subjectAltNames, type CaMaterial, type NodeRole } from '../../src/security/ca.js';
import { newJoinToken } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

const clock: Clock = { nowMs: () => Date.now(), monoMs: () => performance.now(), setTimeout: () => ({ cancel: () => undefined }) };
const managers = [
  { id: 'm1', apiAddress: '127.0.41.1:22001', raftAddress: '127.0.41.1:22002' },
  { id: 'm2', apiAddress: '10.0.0.2:7001', raftAddress: 'mgr2.example:7002' },
];
let ca: CaMaterial;
let app: FastifyInstance;
let url: string;
const tokens: Record<NodeRole, string> = { worker: '', manager: '' };

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
  const m1 = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
  const roles = new Map<string, NodeRole>();
  for (const role of ['worker', 'manager'] as const) {
    const made = newJoinToken(ca.certPem);
    tokens[role] = made.token;
    roles.set(made.secretHash, role);
  }
  const join = new JoinServiceImpl({
    material: { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...m1, identity: { id: 'm1', role: 'manager', clusterId: 'c1' } },
    clock,
    joinToken: (secretHash, nowMs) => {
      const role = roles.get(secretHash);
      return role === undefined ? undefined : { secretHash, role, createdAtMs: nowMs, expiresAtMs: nowMs + 60_000 };
    },
    managers: () => managers,
    worker: () => undefined,
  });
  app = buildManagerApp({ service: new FakeManagerService(), join, https: { key: m1.keyPem, cert: m1.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(() => app?.close());

async function csrFor(id: string, role: NodeRole): Promise<string> {
  return createCsr({ keyPem: (await generateNodeKey()).keyPem, id, role, clusterId: 'c1' });
}

async function joinAs(id: string, role: NodeRole, addresses: unknown[]) {
  return app.inject({ method: 'POST', url: '/v1/join', payload: { token: tokens[role], id, csr: await csrFor(id, role), addresses } });
}

describe('POST /v1/join: the addresses a certificate will name', () => {
  it.each([
    ['*.example.com'], ['not an ip'], ['DNS:w1.example'], ['a..b'], ['-a.example'], ['a-.example'], ['a.example.'], ['w1_x.example'],
    ['1.2.3.999'], ['10.0.0.1.5'], ['host:0'], ['host:65536'], ['host:http'], ['host:'], ['[::1'], ['[10.0.0.1]:80'],
    [`${'x'.repeat(64)}.example`], [`${'a.'.repeat(127)}example`], ['ex ample.com:80'], ['é.example'],
  ])('refuses %j with 400 INVALID_BODY naming the field and the value', async (address) => {
    const res = await joinAs('w20', 'worker', ['127.0.41.20:23001', address]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({
      code: 'INVALID_BODY',
      message: `body.addresses[1]: expected an IP address or a host name (letters, digits and '-' in dot-separated labels, no wildcard), with :port or without, got ${JSON.stringify(address)}`,
    });
  });

  it('refuses an empty address, one that is no string, and more than the limit, with 400 INVALID_BODY naming addresses', async () => {
    for (const addresses of [[''], [7], Array.from({ length: limits.certAddressesMax + 1 }, (_, i) => `10.0.1.${i}:7000`)]) {
      const res = await joinAs('w21', 'worker', addresses);
      expect(res.statusCode, JSON.stringify(addresses)).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'INVALID_BODY', message: expect.stringContaining('body.addresses') as string });
    }
  });

  it('signs IP addresses and host names, with ports or without; the certificate names their hosts', async () => {
    const addresses = ['127.0.41.11:23001', 'W1.Example.com:7000', 'worker-1.internal', '[fd00::5]:7001', 'fd00::6', '10.0.0.9'];
    const res = await joinAs('w22', 'worker', addresses);
    expect(res.statusCode, res.body).toBe(200);
    const sans = subjectAltNames(res.json<{ certificate: string }>().certificate);
    expect(sans.ips).toEqual(expect.arrayContaining(['127.0.41.11', 'fd00::5', 'fd00::6', '10.0.0.9']));
    expect(sans.dns).toEqual(expect.arrayContaining(['W1.Example.com', 'worker-1.internal']));
  });

  it("refuses a worker a manager's API or Raft address (409 WORKER_ADDRESS_IN_USE, as registration does), or a bare manager host", async () => {
    const cases: [string, string][] = [
      ['127.0.41.1:22001', "127.0.41.1:22001 is manager m1's apiAddress"],
      ['127.0.41.1:22002', "127.0.41.1:22002 is manager m1's raftAddress"],
      ['MGR2.example:7002', "MGR2.example:7002 is manager m2's raftAddress"],
      ['127.0.41.1', "127.0.41.1 is the host of manager m1's apiAddress (127.0.41.1:22001)"],
      ['10.0.0.2', "10.0.0.2 is the host of manager m2's apiAddress (10.0.0.2:7001)"],
      ['mgr2.example', "mgr2.example is the host of manager m2's raftAddress (mgr2.example:7002)"],
    ];
    for (const [address, says] of cases) {
      const res = await joinAs('w23', 'worker', ['127.0.41.23:23001', address]);
      expect(res.statusCode, address).toBe(409);
      expect(res.json().error).toEqual({ code: 'WORKER_ADDRESS_IN_USE', message: `body.addresses[1]: ${says}: a worker's certificate may name only the worker's own addresses` });
    }
  });

  it("lets a worker share a manager's host on a port of its own, and name the loopback every certificate names anyway; a manager names its own", async () => {
    expect((await joinAs('w24', 'worker', ['127.0.41.1:23001', 'localhost', '127.0.0.1'])).statusCode).toBe(200);
    const manager = await joinAs('m3', 'manager', ['127.0.41.3:22001', '127.0.41.3:22002']);
    expect(manager.statusCode, manager.body).toBe(200);
    expect(subjectAltNames(manager.json<{ certificate: string }>().certificate).ips).toContain('127.0.41.3');
  });
});

describe('POST /v1/certs/renew: the same rules, over mutual TLS with the certificate it replaces', () => {
  /** Renews as worker w1 whose current certificate names `current` (addresses undefined: none sent, its names carry over). */
  async function renewAsW1(
    addresses: string[] | undefined,
    current: { ips: string[]; dns: string[] } = { ips: ['127.0.41.11'], dns: [] },
  ): Promise<{ status: number; body: { certificate?: string; error?: { code: string; message: string } } }> {
    const w1 = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'w1', role: 'worker', clusterId: 'c1', sans: current });
    const http = new HttpClient({ tls: nodeSecurityFrom({ caCertPem: ca.certPem, ...w1, identity: identityFromCertificate(w1.certPem)! }).clientTls() });
    try {
      const csr = await csrFor('w1', 'worker');
      const body = JSON.stringify(addresses === undefined ? { csr } : { csr, addresses });
      const res = await http.request({ method: 'POST', url, path: '/v1/certs/renew', headers: { 'content-type': 'application/json' }, body });
      return { status: res.status, body: parseJson(res.text) as { certificate?: string } };
    } finally {
      await http.close();
    }
  }

  it("refuses a wildcard or a string that names no host (400), and a manager's address or host (409); renews with the worker's own", async () => {
    for (const address of ['*.example.com', 'not an ip']) {
      const res = await renewAsW1(['127.0.41.11:23001', address]);
      expect(res.status, address).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_BODY', message: expect.stringContaining(`body.addresses[1]: expected an IP address or a host name`) as string });
    }
    for (const address of ['127.0.41.1', '127.0.41.1:22001']) {
      const res = await renewAsW1([address]);
      expect(res.status, address).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'WORKER_ADDRESS_IN_USE', message: expect.stringContaining(`body.addresses[0]: ${address} is`) as string });
    }
    const ok = await renewAsW1(['127.0.41.11:23001']);
    expect(ok.status).toBe(200);
    expect(subjectAltNames(ok.body.certificate!).ips).toEqual(expect.arrayContaining(['127.0.41.11']));
    expect(subjectAltNames(ok.body.certificate!).ips).not.toContain('127.0.41.1');
  });

  it("without addresses, refuses (409) to sign again a manager's host that the current certificate names, as it refuses it asked for", async () => {
    const cases: [{ ips: string[]; dns: string[] }, string][] = [
      [{ ips: ['127.0.41.11', '127.0.41.1'], dns: [] }, "127.0.41.1, which is the host of manager m1's apiAddress (127.0.41.1:22001)"],
      [{ ips: ['10.0.0.2'], dns: [] }, "10.0.0.2, which is the host of manager m2's apiAddress (10.0.0.2:7001)"],
      [{ ips: [], dns: ['mgr2.example'] }, "mgr2.example, which is the host of manager m2's raftAddress (mgr2.example:7002)"],
    ];
    for (const [current, says] of cases) {
      const res = await renewAsW1(undefined, current);
      expect(res.status, says).toBe(409);
      expect(res.body.error).toEqual({
        code: 'WORKER_ADDRESS_IN_USE',
        message: `the current certificate names ${says}: a worker's certificate may name only the worker's own addresses (renew with addresses naming them)`,
      });
    }
    // The way out: the worker's own addresses, asked for.
    const asked = await renewAsW1(['127.0.41.11:23001'], { ips: ['127.0.41.11', '127.0.41.1'], dns: [] });
    expect(asked.status).toBe(200);
    expect(subjectAltNames(asked.body.certificate!).ips).not.toContain('127.0.41.1');
  });

  it('without addresses, renews a worker whose current certificate names only its own hosts (and the loopback every node names), with the same names', async () => {
    const res = await renewAsW1(undefined, { ips: ['127.0.41.11', '127.0.0.1'], dns: ['w1.internal', 'localhost'] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const sans = subjectAltNames(res.body.certificate!);
    expect(sans.ips).toEqual(expect.arrayContaining(['127.0.41.11', '127.0.0.1']));
    expect(sans.dns).toEqual(expect.arrayContaining(['w1.internal', 'localhost']));
  });
});
