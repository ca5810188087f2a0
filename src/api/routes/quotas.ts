// Quotas per namespace:
//   PUT /v1/quotas/:namespace { tasksMax?, cpus?, memoryMb? } -> 200 QuotaView (the quota replaced; {} removes it)
//   GET /v1/quotas                                          -> { items: QuotaView[], nextCursor: null }, by namespace
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { NoQuery } from '../schemas.js';
import type { PlacementService } from '../../contracts/placement.js';
import { namespacePattern } from '../../kv/placement-schemas.js';
import { QuotaLimitsSchema } from '../../kv/quota-store.js';
import { requestContext } from './kv.js';

export interface QuotaRoutesOptions {
  placement: PlacementService;
}

const NamespaceParams = Type.Object({ namespace: Type.String({ pattern: namespacePattern }) });
type NamespaceParams = Static<typeof NamespaceParams>;
type QuotaBody = Static<typeof QuotaLimitsSchema>;

/** QuotaView, for the OpenAPI document (documentedResponse). An absent limit is no limit. */
const QuotaReply = Type.Object(
  {
    namespace: Type.String(),
    ...QuotaLimitsSchema.properties,
    usage: Type.Object({ tasks: Type.Integer(), cpus: Type.Number(), memoryMb: Type.Number() }, { description: 'what the namespace holds now: live tasks and the resources they ask for' }),
  },
  { description: "the namespace's quota" },
);
const QuotaListReply = Type.Object({ items: Type.Array(QuotaReply), nextCursor: Type.Null() }, { description: 'every quota, in namespace order' });

export const quotaRoutes: FastifyPluginAsync<QuotaRoutesOptions> = async (app, { placement }) => {
  app.put<{ Params: NamespaceParams; Body: QuotaBody }>('/v1/quotas/:namespace', { schema: { params: NamespaceParams, body: QuotaLimitsSchema, documentedResponse: { 200: QuotaReply } } }, async (req) => {
    const b = req.body;
    const limits = { ...(b.tasksMax === undefined ? {} : { tasksMax: b.tasksMax }), ...(b.cpus === undefined ? {} : { cpus: b.cpus }), ...(b.memoryMb === undefined ? {} : { memoryMb: b.memoryMb }) };
    return placement.setQuota(req.params.namespace, limits, requestContext(req));
  });

  app.get('/v1/quotas', { schema: { querystring: NoQuery, documentedResponse: { 200: QuotaListReply } } }, async (req) => placement.listQuotas(requestContext(req)));
};
