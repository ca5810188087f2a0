// A node's TLS client checks who a server's certificate names, not only that it chains to the CA and matches the
// host: on one machine every node's certificate names 127.0.0.1, so a worker that took a manager's port would
// otherwise pass for it.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient } from '../../src/client/http.js';
import { nodeSecurityFrom } from '../../src/daemon/security.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert, type NodeRole } from '../../src/security/ca.js';
import type { NodeTls } from '../../src/security/pki-files.js';

let ca: { certPem: string; keyPem: string };
const servers: Server[] = [];

async function material(id: string, role: NodeRole): Promise<NodeTls> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role, clusterId: 'c1', caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
  return { caCertPem: ca.certPem, certPem, keyPem, identity: identityFromCertificate(certPem)! };
}

async function serveAs(m: NodeTls): Promise<string> {
  const server = createServer({ key: m.keyPem, cert: m.certPem }, (_req, res) => res.end('{"ok":true}'));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
});

afterAll(() => {
  for (const s of servers) s.close();
});

describe('a node talks only to the nodes it should', () => {
  it('a worker reaches a manager, and refuses a server holding a worker certificate', async () => {
    const worker = new HttpClient({ tls: nodeSecurityFrom(await material('w1', 'worker')).clientTls() });
    try {
      const manager = await serveAs(await material('m1', 'manager'));
      expect((await worker.requestOk({ method: 'GET', url: manager, path: '/' })).text).toBe('{"ok":true}');
      const impostor = await serveAs(await material('w2', 'worker'));
      await expect(worker.request({ method: 'GET', url: impostor, path: '/' })).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining('a worker talks only to managers') as string });
    } finally {
      await worker.close();
    }
  });

  it('a manager reaches workers and managers of its cluster', async () => {
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m2', 'manager')).clientTls() });
    try {
      for (const server of [await material('w3', 'worker'), await material('m3', 'manager')]) {
        expect((await manager.requestOk({ method: 'GET', url: await serveAs(server), path: '/' })).status).toBe(200);
      }
    } finally {
      await manager.close();
    }
  });
});
