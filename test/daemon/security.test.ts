// A node's TLS client checks who a server's certificate names, not only that it chains to the CA and matches the
// host: on one machine every node's certificate names 127.0.0.1, so a worker that took a manager's port would
// otherwise pass for it.
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient } from '../../src/client/http.js';
import { nodeSecurityFrom, serverProblem } from '../../src/daemon/security.js';
import { limits } from '../../src/lib/limits.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert, type NodeRole } from '../../src/security/ca.js';
import type { NodeTls } from '../../src/security/pki-files.js';
import { operatorCertificate } from '../support/operator-cert.js';
import { waitFor } from '../support/wait.js';

let ca: { certPem: string; keyPem: string };
const servers: Server[] = [];

async function material(id: string, role: NodeRole): Promise<NodeTls> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role, clusterId: 'c1', caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
  return { caCertPem: ca.certPem, certPem, keyPem, identity: identityFromCertificate(certPem)! };
}

async function serveAs(m: Pick<NodeTls, 'certPem' | 'keyPem'>): Promise<string> {
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
      await expect(worker.request({ method: 'GET', url: impostor, path: '/' })).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining('it names worker w2, not a manager') as string });
      // Not even when a call of the worker's named that worker.
      await expect(worker.request({ method: 'GET', url: impostor, path: '/', server: { role: 'worker', id: 'w2' } })).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining('a worker talks only to managers') as string });
    } finally {
      await worker.close();
    }
  });

  it('a manager reaches the workers and managers of its cluster it names', async () => {
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m2', 'manager')).clientTls() });
    try {
      const w3 = await serveAs(await material('w3', 'worker'));
      expect((await manager.requestOk({ method: 'GET', url: w3, path: '/', server: { role: 'worker', id: 'w3' } })).status).toBe(200);
      const m3 = await serveAs(await material('m3', 'manager'));
      expect((await manager.requestOk({ method: 'GET', url: m3, path: '/', server: { role: 'manager', id: 'm3' } })).status).toBe(200);
      expect((await manager.requestOk({ method: 'GET', url: m3, path: '/' })).status).toBe(200);
    } finally {
      await manager.close();
    }
  });
});

// The outside test's attack (bb41): a worker join token bought a certificate for a new id, w10, naming w1's address;
// whoever answered there with it was taken for w1 and got w1's assignments, secretEnv values in clear.
describe("a manager's call reaches the node it names, and no other (through the real HTTP client)", () => {
  const refusal = (why: string): object => ({ code: 'UNREACHABLE', message: expect.stringContaining(`TLS: the server's certificate is refused: ${why}`) as string });

  it("refuses another worker's certificate on the address of the worker it calls, naming both", async () => {
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m1', 'manager')).clientTls() });
    try {
      const impostor = await serveAs(await material('w10', 'worker'));
      const genuine = await serveAs(await material('w1', 'worker'));
      const asW1 = { method: 'POST', path: '/v1/tasks', body: '{"secret":"s3cret"}', server: { role: 'worker', id: 'w1' } } as const;
      await expect(manager.request({ ...asW1, url: impostor })).rejects.toMatchObject(refusal('it names worker w10, not worker w1'));
      expect((await manager.requestOk({ ...asW1, url: genuine })).status).toBe(200);
      // A manager's certificate on a worker's address is no worker's either.
      const m9 = await serveAs(await material('m9', 'manager'));
      await expect(manager.request({ ...asW1, url: m9 })).rejects.toMatchObject(refusal('it names manager m9, not worker w1'));
    } finally {
      await manager.close();
    }
  });

  it('a pooled keep-alive connection verified for one node never serves a call meant for another', async () => {
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m1', 'manager')).clientTls() });
    try {
      const w1 = await serveAs(await material('w1', 'worker'));
      expect((await manager.requestOk({ method: 'GET', url: w1, path: '/', server: { role: 'worker', id: 'w1' } })).status).toBe(200);
      // Same origin, its connection open: a call meant for w2, or for a manager, checks the certificate anew.
      await expect(manager.request({ method: 'GET', url: w1, path: '/', server: { role: 'worker', id: 'w2' } })).rejects.toMatchObject(refusal('it names worker w1, not worker w2'));
      await expect(manager.request({ method: 'GET', url: w1, path: '/' })).rejects.toMatchObject(refusal('it names worker w1, not a manager'));
      await expect(manager.request({ method: 'GET', url: w1, path: '/', server: { role: 'manager', id: 'm2' } })).rejects.toMatchObject(refusal('it names worker w1, not manager m2'));
      expect((await manager.requestOk({ method: 'GET', url: w1, path: '/', server: { role: 'worker', id: 'w1' } })).status).toBe(200);
    } finally {
      await manager.close();
    }
  });

  it('keeps at most limits.httpClientPoolsMax pools: the least recently used is closed, and made again when asked for', async () => {
    const saved = limits.httpClientPoolsMax;
    (limits as { httpClientPoolsMax: number }).httpClientPoolsMax = 2;
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m1', 'manager')).clientTls() });
    try {
      const open = new Map<string, number>();
      const urls = new Map<string, string>();
      for (const id of ['w1', 'w2', 'w3']) {
        const url = await serveAs(await material(id, 'worker'));
        servers.at(-1)!.on('connection', (socket) => {
          open.set(id, (open.get(id) ?? 0) + 1);
          socket.once('close', () => open.set(id, open.get(id)! - 1));
        });
        urls.set(id, url);
      }
      const ask = (id: string) => manager.requestOk({ method: 'GET', url: urls.get(id)!, path: '/', server: { role: 'worker', id } });
      await ask('w1');
      await ask('w2');
      expect(open.get('w1')).toBe(1);
      await ask('w3');
      await waitFor("w1's pool closed", () => open.get('w1') === 0);
      expect(open.get('w2')).toBe(1);
      expect((await ask('w1')).status).toBe(200);
    } finally {
      (limits as { httpClientPoolsMax: number }).httpClientPoolsMax = saved;
      await manager.close();
    }
  });

  it("manager to manager: a worker's certificate on a manager's address is refused (snapshot chunks, forwarded requests)", async () => {
    const manager = new HttpClient({ tls: nodeSecurityFrom(await material('m1', 'manager')).clientTls() });
    try {
      const impostor = await serveAs(await material('w10', 'worker'));
      await expect(manager.request({ method: 'POST', url: impostor, path: '/internal/v1/raft/snapshot', server: { role: 'manager', id: 'm2' } })).rejects.toMatchObject(refusal('it names worker w10, not manager m2'));
      const m3 = await serveAs(await material('m3', 'manager'));
      await expect(manager.request({ method: 'POST', url: m3, path: '/internal/v1/raft/snapshot', server: { role: 'manager', id: 'm2' } })).rejects.toMatchObject(refusal('it names manager m3, not manager m2'));
      // The operator's API certificate names no node: a manager's API may serve it, a worker's never does.
      const operator = await serveAs(operatorMaterial());
      expect((await manager.requestOk({ method: 'GET', url: operator, path: '/', server: { role: 'manager', id: 'm2' } })).status).toBe(200);
      await expect(manager.request({ method: 'GET', url: operator, path: '/', server: { role: 'worker', id: 'w1' } })).rejects.toMatchObject(refusal('it names no node, not worker w1'));
    } finally {
      await manager.close();
    }
  });
});

describe('serverProblem: the certificate must name the node the call expects', () => {
  const peer = (pem: string) => ({ raw: new X509Certificate(pem).raw }) as PeerCertificate;
  const cert = async (id: string, role: NodeRole) => peer((await material(id, role)).certPem);

  it("refuses a worker's certificate for another id when dialling w1, and accepts w1's", async () => {
    expect(serverProblem(await cert('w10', 'worker'), 'c1', 'manager', { role: 'worker', id: 'w1' })).toBe('it names worker w10, not worker w1');
    expect(serverProblem(await cert('w1', 'worker'), 'c1', 'manager', { role: 'worker', id: 'w1' })).toBeUndefined();
    expect(serverProblem(await cert('w1', 'manager'), 'c1', 'manager', { role: 'worker', id: 'w1' })).toBe('it names manager w1, not worker w1');
  });

  it("accepts a manager's certificate for m2 only where m2 (or any manager) is expected", async () => {
    const m2 = await cert('m2', 'manager');
    expect(serverProblem(m2, 'c1', 'manager', { role: 'manager', id: 'm2' })).toBeUndefined();
    expect(serverProblem(m2, 'c1', 'manager', { role: 'manager' })).toBeUndefined();
    expect(serverProblem(m2, 'c1', 'worker', { role: 'manager' })).toBeUndefined();
    expect(serverProblem(m2, 'c1', 'manager', { role: 'manager', id: 'm3' })).toBe('it names manager m2, not manager m3');
    expect(serverProblem(m2, 'c1', 'manager', { role: 'worker', id: 'm2' })).toBe('it names manager m2, not worker m2');
    expect(serverProblem(await cert('w2', 'worker'), 'c1', 'manager', { role: 'manager' })).toBe('it names worker w2, not a manager');
    expect(serverProblem(await cert('w2', 'worker'), 'c1', 'worker', { role: 'manager', id: 'w2' })).toBe('it names worker w2, not manager w2');
    expect(serverProblem(m2, 'c2', 'manager', { role: 'manager', id: 'm2' })).toBe('it names manager m2 of cluster c1, not of this cluster (c2)');
  });

  it("accepts the operator's API certificate (it names no node) where a manager's API is expected, never for a worker", () => {
    const operator = peer(operatorMaterial().certPem);
    expect(serverProblem(operator, 'c1', 'manager', { role: 'manager' })).toBeUndefined();
    expect(serverProblem(operator, 'c1', 'manager', { role: 'manager', id: 'm2' })).toBeUndefined();
    expect(serverProblem(operator, 'c1', 'worker', { role: 'manager' })).toBeUndefined();
    expect(serverProblem(operator, 'c1', 'manager', { role: 'worker', id: 'w1' })).toBe('it names no node, not worker w1');
  });

  it('a worker calls managers only: a call of its meant for a worker is refused whatever the certificate', async () => {
    expect(serverProblem(await cert('w1', 'worker'), 'c1', 'worker', { role: 'worker', id: 'w1' })).toBe('a worker talks only to managers, and this call was meant for worker w1');
  });
});

function operatorMaterial(): { certPem: string; keyPem: string } {
  return operatorCertificate({ ca, ips: ['127.0.0.1'] });
}
