// Joining and renewal (served only by a secure cluster's managers):
//
//   GET  /v1/join/ca         -> 200 { ca }: the cluster CA's certificate; a joiner checks it against the digest in
//                               its join token before it trusts anything else this server says
//   POST /v1/join            { token, id, csr, addresses } -> 200 { certificate, ca, caKey?, managers }: a join
//                               token (MKTKN-1-...) buys one certificate for the role the token was made for
//   POST /v1/certs/renew     { csr, addresses? } -> 200 { certificate }: a node (client certificate) renews its own
//
// Token problems are 401 UNAUTHENTICATED; a request for an id in use is 409 JOIN_REFUSED; a bad CSR is 400.
import type { TLSSocket } from 'node:tls';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import type { JoinService } from '../../contracts/services.js';

const Pem = Type.String({ minLength: 1, maxLength: 16 * 1024 });
const Addresses = Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 8 });

export const JoinBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 512 }),
    id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    csr: Pem,
    addresses: Addresses,
  },
  { additionalProperties: false },
);
export type JoinBody = Static<typeof JoinBody>;

export const RenewBody = Type.Object({ csr: Pem, addresses: Type.Optional(Addresses) }, { additionalProperties: false });
export type RenewBody = Static<typeof RenewBody>;

export interface JoinRoutesOptions {
  join: JoinService;
}

export const joinRoutes: FastifyPluginAsync<JoinRoutesOptions> = async (app, { join }) => {
  app.get('/v1/join/ca', async () => ({ ca: join.caCertPem() }));

  app.post<{ Body: JoinBody }>('/v1/join', { schema: { body: JoinBody } }, async (req) => join.join(req.body));

  app.post<{ Body: RenewBody }>('/v1/certs/renew', { schema: { body: RenewBody } }, async (req) => {
    const socket = req.raw.socket as Partial<TLSSocket>;
    const cert = socket.authorized === true && socket.getPeerCertificate !== undefined ? socket.getPeerCertificate() : null;
    if (cert === null) throw new MinkubeError('UNAUTHENTICATED', 'renewing a certificate takes the current one as the client certificate');
    return join.renew(cert, req.body.csr, req.body.addresses);
  });
};
