// The TLS options of a test server: a certificate for 127.0.0.1 and localhost from a new cluster CA.
import type { HttpsOptions } from '../../src/api/http.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';

/** A server certificate of a new cluster CA, client certificates asked for but not required. */
export async function tlsServerOptions(): Promise<HttpsOptions> {
  const ca = await createClusterCa({ clusterId: 'c1' });
  const server = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
  return { key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false };
}
