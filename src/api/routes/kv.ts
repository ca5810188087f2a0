// The kv routes: PUT, GET and DELETE /v1/kv/<key>, where the key is the rest of the path and may contain '/'.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { assertValidKey } from '../../contracts/keys.js';
import { requestPrincipal } from '../principal.js';
import { DeleteQuery, GetQuery, KeyParams, KvEntryReply, KvVersionReply, PutBody } from '../schemas.js';
import type { ManagerService, RequestContext } from '../../contracts/services.js';
import { parseIntegerParam } from '../validation.js';

export interface KvRoutesOptions {
  service: ManagerService;
}

export const kvRoutes: FastifyPluginAsync<KvRoutesOptions> = async (app, { service }) => {
  app.put<{ Params: KeyParams; Body: PutBody }>(
    '/v1/kv/*',
    { schema: { params: KeyParams, body: PutBody, response: { 200: KvVersionReply } } },
    async (req) => service.kvPut(keyOf(req), req.body.value, req.body.ifVersion, requestContext(req)),
  );

  app.get<{ Params: KeyParams; Querystring: GetQuery }>(
    '/v1/kv/*',
    { schema: { params: KeyParams, querystring: GetQuery, response: { 200: KvEntryReply } } },
    async (req) => service.kvGet(keyOf(req), req.query.consistency ?? 'linearizable', requestContext(req)),
  );

  app.delete<{ Params: KeyParams; Querystring: DeleteQuery }>(
    '/v1/kv/*',
    { schema: { params: KeyParams, querystring: DeleteQuery, response: { 200: KvVersionReply } } },
    async (req) => {
      const key = keyOf(req);
      return service.kvDelete(key, parseIntegerParam('ifVersion', req.query.ifVersion), requestContext(req));
    },
  );
};

function keyOf(req: FastifyRequest<{ Params: KeyParams }>): string {
  const key = req.params['*'];
  assertValidKey(key);
  return key;
}

export function requestContext(req: FastifyRequest): RequestContext {
  const principal = requestPrincipal(req);
  const ctx: { -readonly [K in keyof RequestContext]: RequestContext[K] } = { requestId: req.id, deadlineMs: req.deadlineMs };
  if (principal !== undefined) ctx.principal = principal;
  if (req.traceparent !== undefined) ctx.traceparent = req.traceparent;
  return ctx;
}
