// A node joining with a token, against what answers at its URL: over plain http:// nothing at all is sent (the token
// goes only over TLS pinned to the CA it names); an unreachable or silent manager, another CA, a worker's certificate
// and the operator's are each said as they are.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { joinWithToken } from '../../src/daemon/join.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { newJoinToken } from '../../src/security/tokens.js';
import { FakeManagerService } from '../api/fake-service.js';
import { operatorCertificate } from '../support/operator-cert.js';

const insecure = buildManagerApp({ service: new FakeManagerService() });
let url: string;
let dir: string;

beforeAll(async () => {
  await insecure.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(insecure.server.address() as AddressInfo).port}`;
  dir = await mkdtemp(join(tmpdir(), 'minkube-join-'));
});
afterAll(async () => {
  await insecure.close();
  await rm(dir, { recursive: true, force: true });
});

describe('joinWithToken', () => {
  it('a plain http:// URL is refused before anything is sent (HTTPS_REQUIRED): the token never crosses the wire in clear, whoever answers there', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { token } = newJoinToken(ca.certPem);
    // Anyone on the path may answer the public CA, whose digest is the token's: over plain HTTP the token would follow.
    const requests: string[] = [];
    const plain = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push(`${req.method} ${req.url} ${body}`);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(req.url === '/v1/join/ca' ? { ca: ca.certPem } : {}));
      });
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.62.4', r));
    const plainUrl = `http://127.0.62.4:${(plain.address() as AddressInfo).port}`;
    try {
      for (const at of [plainUrl, url, plainUrl.replace('http:', 'HTTP:')]) {
        const joining = joinWithToken({ url: at, token, id: 'w1', role: 'worker', dataDir: dir, addresses: ['127.0.0.1:9300'] });
        const host = new URL(at).host;
        await expect(joining).rejects.toMatchObject({ code: 'HTTPS_REQUIRED', message: `http://${host} is plain HTTP: a join token is sent only over TLS, pinned to the CA it names; give https://${host} or ${host}` });
      }
      expect(requests).toEqual([]);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await new Promise((r) => plain.close(r));
    }
  });

  it('a manager that cannot be reached, or does not answer in time: UNREACHABLE or TIMEOUT saying the CA could not be fetched, and from where', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { token } = newJoinToken(ca.certPem);
    const joinAt = (at: string, timeoutMs?: number): Promise<unknown> =>
      joinWithToken({ url: at, token, id: 'w2', role: 'worker', dataDir: dir, addresses: ['127.0.0.1:9302'], ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedUrl = `https://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((r) => closed.close(r));
    await expect(joinAt(closedUrl)).rejects.toMatchObject({ code: 'UNREACHABLE', message: `cannot fetch the cluster CA: cannot reach ${closedUrl}/v1/join/ca (ECONNREFUSED)` });

    const operator = operatorCertificate({ ca, ips: ['127.0.0.1'] });
    const silent = createHttpsServer({ key: operator.keyPem, cert: operator.certPem }, () => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentUrl = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      await expect(joinAt(silentUrl, 200)).rejects.toMatchObject({ code: 'TIMEOUT', message: `cannot fetch the cluster CA: GET ${silentUrl}/v1/join/ca: no answer within 200 ms` });
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('a token pinning another CA (another cluster, or one made before a CA rotation) is never sent, and the refusal says both', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const previous = await createClusterCa({ clusterId: 'c1' });
    const manager = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
    const { fake, bodies, fakeUrl } = await fakeJoinServer(manager, ca.certPem);
    try {
      const old = newJoinToken(previous.certPem);
      const joining = joinWithToken({ url: fakeUrl, token: old.token, id: 'w8', role: 'worker', dataDir: dir, addresses: ['127.0.0.1:9308'] });
      await expect(joining).rejects.toMatchObject({
        code: 'UNAUTHENTICATED',
        message: `the cluster at ${fakeUrl} presents a CA with digest ${newJoinToken(ca.certPem).caDigest}, but the token expects ${old.caDigest}: refusing to trust it ` +
          "(another cluster, or a token made before this cluster's CA was rotated: make a new one there with minkube token create)",
      });
      expect(bodies).toEqual([]);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it("never sends the join token to a server holding a worker's certificate of the cluster's CA", async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const worker = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'w9', role: 'worker', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
    const { fake, bodies, fakeUrl } = await fakeJoinServer(worker, ca.certPem);
    try {
      const { token } = newJoinToken(ca.certPem);
      const joining = joinWithToken({ url: fakeUrl, token, id: 'm9', role: 'manager', dataDir: dir, addresses: ['127.0.0.1:9301'] });
      await expect(joining).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringMatching(/it is worker w9's, and a joining node sends its token only to managers/) as string });
      expect(bodies).toEqual([]);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it("sends the join token to a manager serving the operator's API certificate (it names no node), from the cluster CA or a CA it is given", async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const otherCa = await createClusterCa({ clusterId: 'corp' });
    const { token } = newJoinToken(ca.certPem);
    for (const signer of [ca, otherCa]) {
      const operator = operatorCertificate({ ca: signer, ips: ['127.0.0.1'] });
      const { fake, bodies, fakeUrl } = await fakeJoinServer(operator, ca.certPem);
      try {
        const join = (apiCaPem?: string) => joinWithToken({ url: fakeUrl, token, id: 'w5', role: 'worker', dataDir: dir, addresses: ['127.0.0.1:9305'], ...(apiCaPem === undefined ? {} : { apiCaPem }) });
        if (signer === otherCa) {
          // The token pins the cluster CA only: another CA's certificate needs that CA given (api.tlsCaFile). Said as
          // the token's CA, not as the CLI's "no CA this client trusts" (whose hint is about a credentials file).
          const refused = await join().then(() => null, (e: Error) => e);
          expect(refused).toMatchObject({
            code: 'UNREACHABLE',
            message: `cannot reach ${fakeUrl}/v1/join (TLS: the server's certificate is not signed by the cluster CA the join token names (digest ${newJoinToken(ca.certPem).caDigest}): UNABLE_TO_VERIFY_LEAF_SIGNATURE): ` +
              `the token was not sent; is ${fakeUrl} a manager's own API address, not a proxy's or one with an API certificate of another CA?`,
          });
          expect(refused?.message).not.toContain('no CA this client trusts');
          expect(bodies).toEqual([]);
        }
        // The fake answers no certificate: what matters is that the request was sent, and over TLS it accepted.
        await expect(join(signer === otherCa ? otherCa.certPem : undefined)).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining('answered no certificate and managers') as string });
        expect(bodies.map((b) => (JSON.parse(b) as { token: string }).token)).toEqual([token]);
      } finally {
        await new Promise((r) => fake.close(r));
      }
    }
  });
});

/** An HTTPS server with `cert` that answers the join CA route with `caPem` and records every other request's body. */
async function fakeJoinServer(cert: { keyPem: string; certPem: string }, caPem: string): Promise<{ fake: Server; bodies: string[]; fakeUrl: string }> {
  const bodies: string[] = [];
  const fake = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/join/ca') return void res.end(JSON.stringify({ ca: caPem }));
      bodies.push(body);
      res.end('{}');
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  return { fake, bodies, fakeUrl: `https://127.0.0.1:${(fake.address() as AddressInfo).port}` };
}
