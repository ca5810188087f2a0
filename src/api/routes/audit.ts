// The audit trail's side of the managers' API: GET /v1/audit reads this manager's audit log, and every refused
// request (401, 403, 429) and every leadership transfer is recorded by an onResponse hook, so no path can forget to.
//
//   GET /v1/audit  ?since=ISO|ms&principal=ACCESSOR_OR_NODE&limit=(1..1000, default 100)&cursor=&excludeOp=OP,OP
//                  -> { items: [line], nextCursor }, oldest first. Without since or cursor: the newest lines.
//
// A bad parameter is 400 INVALID_PARAM naming it. Permission ('audit', 'read'): admins, by the role table.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import { auditPrincipal, auditPrincipalOfEntry, principalOf, requestPrincipal } from '../principal.js';
import type { AuditQuery, AuditRefusal, AuditService } from '../../contracts/services.js';
import { parseIntegerParam } from '../validation.js';
import { listLimit } from './tasks.js';
import { Nullable } from '../../lib/nullable.js';
import { LimitParam } from '../schemas.js';

export interface AuditRoutesOptions {
  audit: AuditService;
}

const AuditQuerySchema = Type.Object(
  {
    since: Type.Optional(Type.String({ description: "lines from this time on: an ISO 8601 time with a date and a time of day ('2030-01-01T12:00:00Z'), or milliseconds since the epoch" })),
    principal: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    limit: Type.Optional(LimitParam),
    cursor: Type.Optional(Type.String({ description: "the previous page's nextCursor: a whole number >= 0 in decimal digits" })),
    excludeOp: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: "leave out the committed lines of these ops, comma-separated ('worker.heartbeat'): filtered before the page is cut, so limit and cursor count only the lines answered" })),
  },
  { additionalProperties: false },
);
type AuditQuerySchema = Static<typeof AuditQuerySchema>;

const Principal = Type.Union([
  Type.Object({ token: Type.String(), role: Type.String() }),
  Type.Object({ node: Type.String(), role: Type.String() }),
  Type.Null(),
]);
// The reply lists every field of a line, so nothing else in a file (edited by hand, say) leaves in an answer.
const CommittedLine = Type.Object({
  seq: Type.Integer(), time: Type.String(), index: Type.Integer(), principal: Principal, op: Type.String(),
  target: Nullable(Type.String()), outcome: Type.String(), requestId: Nullable(Type.String()),
});
// Before RefusedLine in the reply's union: a served line is a refused line with a target, which that one would drop.
const ServedLine = Type.Object({
  seq: Type.Integer(), time: Type.String(), principal: Principal, route: Type.String(), target: Nullable(Type.String()), outcome: Type.String(),
  requestId: Nullable(Type.String()),
});
const RefusedLine = Type.Object({
  seq: Type.Integer(), time: Type.String(), principal: Principal, route: Type.String(), outcome: Type.String(), requestId: Type.String(),
});
const RefusalSummaryLine = Type.Object({
  seq: Type.Integer(), time: Type.String(), principal: Principal, outcome: Type.String(), client: Type.String(), count: Type.Integer(),
  since: Type.String(), routes: Type.Record(Type.String(), Type.Integer()),
});
const AuditReply = Type.Object({ items: Type.Array(Type.Union([CommittedLine, ServedLine, RefusedLine, RefusalSummaryLine])), nextCursor: Nullable(Type.String()) });

export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, { audit }) => {
  app.get<{ Querystring: AuditQuerySchema }>('/v1/audit', { schema: { querystring: AuditQuerySchema, response: { 200: AuditReply } } }, async (req) => {
    const page = await audit.query(auditQuery(req.query));
    // A summary line written without its client (HTTP/2 refusals, before that was fixed) still reads: '(unknown)'.
    return { ...page, items: page.items.map((l) => ('count' in l && typeof l.client !== 'string' ? { ...l, client: '(unknown)' } : l)) };
  });
};

export function auditQuery(q: AuditQuerySchema): AuditQuery {
  const out: { -readonly [K in keyof AuditQuery]: AuditQuery[K] } = { limit: listLimit(q.limit) };
  if (q.since !== undefined) out.sinceMs = parseSince(q.since);
  if (q.principal !== undefined) out.principal = q.principal;
  const cursor = parseIntegerParam('cursor', q.cursor);
  if (cursor !== undefined) out.afterSeq = cursor;
  if (q.excludeOp !== undefined) out.excludeOps = q.excludeOp.split(',').filter((op) => op !== '');
  return out;
}

/** Milliseconds since the epoch, or an ISO 8601 time with a date and a time of day ('2030-01-01T12:00:00Z'). */
function parseSince(text: string): number {
  if (/^[0-9]{1,16}$/.test(text)) return Number(text);
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new MinkubeError('INVALID_PARAM', `query.since: expected an ISO 8601 time or milliseconds since the epoch, got ${JSON.stringify(text)}`);
  return ms;
}

const refusalCodes: ReadonlySet<string> = new Set<AuditRefusal>(['UNAUTHENTICATED', 'FORBIDDEN', 'RATE_LIMITED', 'QUEUE_FULL']);
const refusalByStatus: Readonly<Record<number, AuditRefusal>> = { 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 429: 'RATE_LIMITED' };

/**
 * The routes that change the cluster without a log entry of their own, each with what it names as its target: each
 * request is a line of the manager that served it, whatever the outcome. (A reload is recorded by the reloader,
 * which alone knows what changed, for signals too.)
 */
const servedRoutes: Readonly<Record<string, (req: FastifyRequest) => string>> = {
  'POST /v1/cluster/leader': (req) => {
    const id = (req.body as { id?: unknown } | null | undefined)?.id;
    // A body its schema refused still names what it asked for, cut short.
    if (id === undefined || id === null) return 'any';
    return (typeof id === 'string' ? id : JSON.stringify(id)).slice(0, 64);
  },
};

/**
 * Records every 401, 403 and 429 this app answers, whichever hook or handler refused, and every request to the
 * servedRoutes. Call it on the root app before the routes are registered (the hooks must cover them all). A 429
 * RATE_LIMITED (a token past its bucket, or with no principal a client address's anonymous bucket) goes to
 * rateLimited, which counts them per caller instead of writing each: a caller's refusals past its bucket come as fast
 * as it sends.
 */
export function recordRequests(app: FastifyInstance, audit: Pick<AuditService, 'refused' | 'rateLimited' | 'served'>): void {
  const codes = new WeakMap<FastifyRequest, string>();
  // The client's address, read while the request is live: over HTTP/2, req.ip reads the stream's session socket, which
  // an answered stream no longer has (it was undefined in onResponse, and every address was one caller).
  const clients = new WeakMap<FastifyRequest, string>();
  // Callback hooks, not async ones: every request passes them, and a promise each is measurable on a busy leader.
  app.addHook('onError', (req, _reply, err, done) => {
    if (typeof (err as { code?: unknown }).code === 'string') codes.set(req, (err as { code: string }).code);
    const ip = req.ip as string | undefined;
    if (ip !== undefined) clients.set(req, ip);
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const outcome = refusalOf(reply.statusCode, codes.get(req));
    // The route's template, never the raw URL: a kv key or a query string may say more than the log should.
    const route = `${req.method} ${req.routeOptions.url ?? '(no route)'}`;
    if (outcome !== null) {
      const principal = auditPrincipal(principalOf(req));
      if (outcome === 'RATE_LIMITED') audit.rateLimited(clients.get(req) ?? (req.ip as string | undefined) ?? '(unknown)', { principal, route, outcome, requestId: req.id });
      else audit.refused({ principal, route, outcome, requestId: req.id });
    } else {
      const targetOf = servedRoutes[route];
      if (targetOf !== undefined) {
        const served = reply.statusCode < 400 ? 'ok' : (codes.get(req) ?? `HTTP_${reply.statusCode}`);
        audit.served({ principal: auditPrincipalOfEntry(requestPrincipal(req)), route, target: targetOf(req), outcome: served, requestId: req.id });
      }
    }
    done();
  });
}

function refusalOf(status: number, code: string | undefined): AuditRefusal | null {
  const byStatus = refusalByStatus[status];
  if (byStatus === undefined) return null;
  return code !== undefined && refusalCodes.has(code) ? (code as AuditRefusal) : byStatus;
}
