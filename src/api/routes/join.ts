// Joining and renewal (a secure cluster's managers; an insecure cluster's answer each with 400 INVALID_BODY saying it
// has no CA, as join-token creation there does):
//
//   GET  /v1/join/ca         -> 200 { ca }: the cluster CA's certificate; a joiner checks it against the digest in
//                               its join token before it trusts anything else this server says
//   POST /v1/join            { token, id, csr, addresses } -> 200 { certificate, ca, caKey?, managers }: a join
//                               token (MKTKN-1-...) buys one certificate for the role the token was made for
//   POST /v1/certs/renew     { csr, addresses? } -> 200 { certificate }: a node (client certificate) renews its own
//
// Token problems are 401 UNAUTHENTICATED; a request for an id in use is 409 JOIN_REFUSED; a bad CSR, or one for the
// other role than the token's (a worker with a manager join token), is 400, as is an address that is neither an IP
// address nor a host name; a worker asking for a manager's address is 409 WORKER_ADDRESS_IN_USE.
import type { TLSSocket } from 'node:tls';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { idPattern } from '../../lib/patterns.js';
import type { JoinService } from '../../contracts/services.js';

const Pem = Type.String({ minLength: 1, maxLength: 16 * 1024 });
// Each an IP address or a host name, with :port or without: checked by the join service (certAddressParts).
const Addresses = Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: limits.certAddressesMax });

export const JoinBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 512 }),
    id: Type.String({ minLength: 1, maxLength: 64, pattern: idPattern }),
    csr: Pem,
    addresses: Addresses,
  },
  { additionalProperties: false },
);
export type JoinBody = Static<typeof JoinBody>;

export const RenewBody = Type.Object({ csr: Pem, addresses: Type.Optional(Addresses) }, { additionalProperties: false });
export type RenewBody = Static<typeof RenewBody>;

// What the routes answer, for the OpenAPI document (documentedResponse).
const CaReply = Type.Object({ ca: Type.String({ description: "the cluster CA's certificate (PEM)" }) }, { description: "the CA's certificate: check its digest against the join token's" });
const JoinReply = Type.Object(
  {
    certificate: Type.String({ description: "the node's certificate (PEM)" }),
    ca: Type.String(),
    caKey: Type.Optional(Type.String({ description: 'managers only: the CA key' })),
    managers: Type.Array(Type.Object({ id: Type.String(), raftAddress: Type.String(), apiAddress: Type.String() })),
  },
  { description: 'a certificate for the role the join token was made for' },
);
const RenewReply = Type.Object({ certificate: Type.String() }, { description: 'the renewed certificate (PEM)' });

export interface JoinRoutesOptions {
  join: JoinService;
}

export const joinRoutes: FastifyPluginAsync<JoinRoutesOptions> = async (app, { join }) => {
  app.get('/v1/join/ca', { schema: { documentedResponse: { 200: CaReply } } }, async () => ({ ca: join.caCertPem() }));

  app.post<{ Body: JoinBody }>('/v1/join', { schema: { body: JoinBody, documentedResponse: { 200: JoinReply }, errorCodes: ['UNAUTHENTICATED', 'JOIN_REFUSED', 'WORKER_ADDRESS_IN_USE'] } }, async (req) => join.join(req.body, req.id));

  app.post<{ Body: RenewBody }>('/v1/certs/renew', { schema: { body: RenewBody, documentedResponse: { 200: RenewReply }, errorCodes: ['UNAUTHENTICATED', 'WORKER_ADDRESS_IN_USE'] } }, async (req) => {
    const socket = req.raw.socket as Partial<TLSSocket>;
    const cert = socket.authorized === true && socket.getPeerCertificate !== undefined ? socket.getPeerCertificate() : null;
    if (cert === null) throw new MinkubeError('UNAUTHENTICATED', 'renewing a certificate takes the current one as the client certificate');
    return join.renew(cert, req.body.csr, req.body.addresses);
  });
};

/** What an insecure cluster (no CA) answers on the same routes: it has no certificate to give, sign or renew. */
export const insecureJoinRoutes: FastifyPluginAsync = async (app) => {
  const noCa = (what: string): MinkubeError => new MinkubeError('INVALID_BODY', `this cluster is insecure and has no CA, so ${what}`);
  // The document lists no success for them: there is none.
  const schema = { summary: 'always 400 INVALID_BODY: an insecure cluster has no CA' };
  app.get('/v1/join/ca', { schema }, async () => {
    throw noCa('there is no CA certificate to fetch and no join token to check it against');
  });
  app.post('/v1/join', { schema }, async () => {
    throw noCa('it takes no join tokens and issues no certificates: a manager joins it with an http:// --join URL and no --token');
  });
  app.post('/v1/certs/renew', { schema }, async () => {
    throw noCa('it has no certificates to renew');
  });
};
