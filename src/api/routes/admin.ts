// POST /v1/admin/reload: the answering manager re-reads its config file and applies what can change live (as
// SIGHUP does); the answer names what was applied, what needs a restart, and what this node does not use.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { AuditPrincipal } from '../../contracts/services.js';
import { auditPrincipalOfEntry, requestPrincipal } from '../principal.js';
import { takesNoBody } from '../validation.js';

export const ReloadReply = Type.Object(
  {
    /** The node that reloaded. */
    node: Type.String(),
    /** Changed and in effect now; `from`/`to` are the values (a certificate's sha256 fingerprint for api.tlsCertFile). */
    applied: Type.Array(Type.Object({ key: Type.String(), from: Type.Unknown(), to: Type.Unknown() })),
    /** Changed in the file but not applied: each needs a restart of this node, for the reason given. */
    refused: Type.Array(Type.Object({ key: Type.String(), reason: Type.String() })),
    /** Changed in the file, but this kind of node does not read them. */
    ignored: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type ReloadReport = Static<typeof ReloadReply>;

/** Who asked for a reload, for this manager's audit line: a request, or a signal (SIGHUP: no principal, no request id). */
export interface ReloadCaller {
  readonly principal: AuditPrincipal | null;
  /** 'POST /v1/admin/reload', or 'SIGHUP'. */
  readonly route: string;
  readonly requestId: string | null;
}

export interface AdminService {
  reload(by: ReloadCaller): Promise<ReloadReport>;
}

const reloadRoute = 'POST /v1/admin/reload';

export const adminRoutes: FastifyPluginAsync<{ admin: AdminService }> = async (app, { admin }) => {
  app.post('/v1/admin/reload', { schema: { summary: "re-read this manager's config file and apply what can change live", response: { 200: ReloadReply } }, preValidation: takesNoBody }, async (req) =>
    admin.reload({ principal: auditPrincipalOfEntry(requestPrincipal(req)), route: reloadRoute, requestId: req.id }),
  );
};
