// What Minkube's clients accept from a manager's API: a node certificate of this cluster as before (a manager's where
// the client sends a token or is a worker), or the operator's API certificate (api.tlsCertFile), which names no node:
// it must chain to a CA the client trusts (the cluster CA; api.tlsCaFile's too once given) and name the host dialled.
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliTls } from '../../src/cli/connection.js';
import { HttpClient, neverSent, type HttpClientOptions } from '../../src/client/http.js';
import { nodeSecurityFrom } from '../../src/daemon/security.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert, serverCertificateProblem, type CaMaterial, type NodeRole } from '../../src/security/ca.js';
import { operatorCertificate } from '../support/operator-cert.js';
import type { MinkubeError } from '../../src/lib/errors.js';

let clusterCa: CaMaterial;
/** Another CA (a corporate one, say) that the operator may have sign the API certificate. */
let otherCa: CaMaterial;
const servers: Server[] = [];
const clients: HttpClient[] = [];

beforeAll(async () => {
  clusterCa = await createClusterCa({ clusterId: 'c1' });
  otherCa = await createClusterCa({ clusterId: 'corp' });
});

afterAll(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) s.close();
});

async function serve(pair: { certPem: string; keyPem: string }): Promise<string> {
  const server = createServer({ key: pair.keyPem, cert: pair.certPem }, (_req, res) => res.end('{"ok":true}'));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function nodeCert(id: string, role: NodeRole, ca = clusterCa, clusterId = 'c1') {
  return issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId, sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
}

/** The clients of a manager's API, each as Minkube builds it: the CLI, a worker, a manager. */
async function clientsOf(extra: Pick<HttpClientOptions, 'apiCaPem'> = {}): Promise<Record<'cli' | 'worker' | 'manager', HttpClient>> {
  const node = async (id: string, role: NodeRole) => {
    const { certPem, keyPem } = await nodeCert(id, role);
    return new HttpClient({ tls: nodeSecurityFrom({ caCertPem: clusterCa.certPem, certPem, keyPem, identity: identityFromCertificate(certPem)! }).clientTls(), ...extra });
  };
  const made = { cli: new HttpClient({ tls: cliTls(clusterCa.certPem, 'c1'), ...extra }), worker: await node('w1', 'worker'), manager: await node('m1', 'manager') };
  clients.push(...Object.values(made));
  return made;
}

const get = (client: HttpClient, url: string) => client.requestOk({ method: 'GET', url, path: '/v1/cluster' });

describe('the operator certificate on a manager API', () => {
  it('is accepted from the cluster CA when it names the host dialled: by the CLI, a worker and a manager', async () => {
    const url = await serve(operatorCertificate({ ca: clusterCa, ips: ['127.0.0.1'] }));
    for (const [who, client] of Object.entries(await clientsOf())) expect((await get(client, url)).text, who).toBe('{"ok":true}');
    // A DNS name works the same way, as for any HTTPS server.
    const byName = await serve(operatorCertificate({ ca: clusterCa, dns: ['localhost'] }));
    const { cli } = await clientsOf();
    expect((await get(cli, byName.replace('127.0.0.1', 'localhost'))).status).toBe(200);
  });

  it('is refused when its names miss the host dialled, and the refusal names that host', async () => {
    const url = await serve(operatorCertificate({ ca: clusterCa, ips: ['127.0.0.2'], dns: ['api.example'] }));
    for (const [who, client] of Object.entries(await clientsOf())) {
      await expect(get(client, url), who).rejects.toMatchObject({
        code: 'UNREACHABLE',
        message: expect.stringContaining("TLS: the server's certificate is refused: it is not for 127.0.0.1; its names: DNS:api.example, IP Address:127.0.0.2)") as string,
      });
    }
    // The request never left: a write may go on to the next manager, whose certificate may name it.
    const refused = await get((await clientsOf()).cli, url).catch((err: unknown) => err as MinkubeError);
    expect(neverSent(refused as MinkubeError)).toBe(true);
  });

  it('is refused from a CA the client does not trust, saying so; accepted once that CA is trusted (api.tlsCaFile)', async () => {
    const url = await serve(operatorCertificate({ ca: otherCa, ips: ['127.0.0.1'] }));
    for (const [who, client] of Object.entries(await clientsOf())) {
      await expect(get(client, url), who).rejects.toMatchObject({
        code: 'UNREACHABLE',
        message: expect.stringContaining("TLS: the server's certificate is refused: no CA this client trusts signed it: unable to verify the first certificate)") as string,
      });
    }
    for (const [who, client] of Object.entries(await clientsOf({ apiCaPem: otherCa.certPem }))) expect((await get(client, url)).status, who).toBe(200);
    // Still checked for the host: the other CA is trusted for the name, not instead of it.
    const elsewhere = await serve(operatorCertificate({ ca: otherCa, ips: ['127.0.0.2'] }));
    await expect(get((await clientsOf({ apiCaPem: otherCa.certPem })).cli, elsewhere)).rejects.toThrow(/it is not for 127\.0\.0\.1/);
  });

  it('follows the trust a reload sets (setApiCa), and keeps it through a renewed node certificate (setTls)', async () => {
    const url = await serve(operatorCertificate({ ca: otherCa, ips: ['127.0.0.1'] }));
    const { worker } = await clientsOf();
    await expect(get(worker, url)).rejects.toThrow(/no CA this client trusts/);
    worker.setApiCa(otherCa.certPem);
    expect((await get(worker, url)).status).toBe(200);
    const renewed = await nodeCert('w1', 'worker');
    worker.setTls(nodeSecurityFrom({ caCertPem: clusterCa.certPem, ...renewed, identity: identityFromCertificate(renewed.certPem)! }).clientTls());
    expect((await get(worker, url)).status).toBe(200);
    worker.setApiCa(undefined);
    await expect(get(worker, url)).rejects.toThrow(/no CA this client trusts/);
  });
});

describe('node certificates are judged as before', () => {
  it("a worker's certificate is refused by the CLI and by a worker, with another CA trusted or not; a manager reaches it as that worker only", async () => {
    const url = await serve(await nodeCert('w9', 'worker'));
    for (const extra of [{}, { apiCaPem: otherCa.certPem }]) {
      const { cli, worker, manager } = await clientsOf(extra);
      await expect(get(cli, url)).rejects.toThrow(/the server's certificate is refused: it is worker w9's, and the CLI sends its token only to managers/);
      await expect(get(worker, url)).rejects.toThrow(/the server's certificate is refused: it names worker w9, not a manager/);
      // A call that names no server means a manager's API.
      await expect(get(manager, url)).rejects.toThrow(/the server's certificate is refused: it names worker w9, not a manager/);
      expect((await manager.requestOk({ method: 'GET', url, path: '/', server: { role: 'worker', id: 'w9' } })).status).toBe(200);
    }
  });

  it("a manager's certificate is accepted; one naming a node of another cluster is refused, even from a trusted CA", async () => {
    const own = await serve(await nodeCert('m2', 'manager'));
    const foreign = await serve(await nodeCert('m1', 'manager', otherCa, 'corp'));
    for (const [who, client] of Object.entries(await clientsOf({ apiCaPem: otherCa.certPem }))) {
      expect((await get(client, own)).status, who).toBe(200);
      await expect(get(client, foreign), who).rejects.toThrow(/it names manager m1 of cluster corp, not of this cluster \(c1\)/);
    }
  });
});

describe('serverCertificateProblem', () => {
  const peer = (pem: string) => ({ raw: new X509Certificate(pem).raw }) as PeerCertificate;
  const rule = { clusterId: 'c1', managersOnly: 'the CLI sends its token only to managers' };

  it('passes a certificate that names no node (the chain and host name, checked by TLS, are its whole check)', () => {
    expect(serverCertificateProblem(peer(operatorCertificate({ ca: clusterCa, ips: ['10.0.0.7'] }).certPem), rule)).toBeUndefined();
    // A subject that only looks like a node's (no OU=manager|worker) names none either.
    expect(serverCertificateProblem(peer(operatorCertificate({ ca: clusterCa, subject: [['CN', 'm1'], ['OU', 'api'], ['O', 'c1']] }).certPem), rule)).toBeUndefined();
  });

  it("refuses a worker's node certificate where only managers will do, and a node of another cluster always", async () => {
    const worker = peer((await nodeCert('w9', 'worker')).certPem);
    expect(serverCertificateProblem(worker, rule)).toBe("it is worker w9's, and the CLI sends its token only to managers");
    expect(serverCertificateProblem(worker, { clusterId: 'c1' })).toBeUndefined();
    expect(serverCertificateProblem(peer((await nodeCert('m1', 'manager')).certPem), rule)).toBeUndefined();
    expect(serverCertificateProblem(peer((await nodeCert('m1', 'manager', otherCa, 'corp')).certPem), { clusterId: 'c1' })).toBe('it names manager m1 of cluster corp, not of this cluster (c1)');
  });
});
