// The service routes of every manager. A follower proposes through Raft and reads linearizably like the task routes.
//
//   POST   /v1/services                 { name, task, replicas, ports?, healthCheck?, update?, constraints?, priority?, namespace? }
//                                       -> 201 the service; 400 INVALID_BODY naming the field; 409 SERVICE_EXISTS
//   GET    /v1/services                 ?limit=&cursor=&consistency= -> { items, nextCursor } in name order
//   GET    /v1/services/:name           the service (replicas desired/running/healthy, versions, rollout, per-replica tasks)
//   PATCH  /v1/services/:name           { replicas?, task?, ports?, healthCheck?, update?, constraints?, priority?, namespace?, ifVersion? }:
//                                       replicas alone scales; a changed spec makes a new version and rolls it out;
//                                       409 SERVICE_VERSION_MISMATCH if ifVersion is not the service's version
//   POST   /v1/services/:name/rollback  back to the previous version; 409 SERVICE_ROLLBACK_REFUSED without one
//   DELETE /v1/services/:name           forgets the service and stops every replica -> { name, deleted: true, stopping }
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { takesNoBody } from '../validation.js';
import type { ServiceCreateRequest, ServicePatchRequest, ServicesService } from '../../contracts/service-model.js';
import { serviceNamePattern, UpdateSchema } from '../../kv/service-commands.js';
import { ConstraintsSchema, NamespaceSchema, PrioritySchema } from '../../kv/placement-schemas.js';
import { HealthCheckSchema, portNamePattern, TaskSpecSchema } from '../../kv/task-spec.js';
import { limits } from '../../lib/limits.js';
import { MinkubeError } from '../../lib/errors.js';
import { requestContext } from './kv.js';
import { listLimit } from './tasks.js';
import { Nullable } from '../../lib/nullable.js';
import { LimitParam } from '../schemas.js';

const Name = Type.String({ pattern: serviceNamePattern });
const specParts = {
  ports: Type.Optional(Type.Array(Type.Object({ name: Type.String({ pattern: portNamePattern }) }, { additionalProperties: false }), { minItems: 1, maxItems: limits.taskPortsMax })),
  healthCheck: Type.Optional(HealthCheckSchema),
  update: Type.Optional(Type.Partial(UpdateSchema, { additionalProperties: false })),
  // The task's own bounds: a service's constraints and namespace become its replicas' (more was refused by the
  // command's check, as INVALID_COMMAND).
  constraints: Type.Optional(ConstraintsSchema),
  priority: Type.Optional(PrioritySchema),
  namespace: Type.Optional(NamespaceSchema),
};
const Replicas = Type.Integer({ minimum: 0, maximum: limits.serviceReplicasMax });

const CreateBody = Type.Object({ name: Name, task: TaskSpecSchema, replicas: Replicas, ...specParts }, { additionalProperties: false });
const IfVersion = Type.Integer({
  minimum: 1, maximum: Number.MAX_SAFE_INTEGER,
  description: 'the version this change was made from (a task read and sent whole): 409 SERVICE_VERSION_MISMATCH if the service is at another',
});
const PatchBody = Type.Object({ replicas: Type.Optional(Replicas), task: Type.Optional(TaskSpecSchema), ...specParts, ifVersion: Type.Optional(IfVersion) }, { additionalProperties: false, minProperties: 1 });
const NameParams = Type.Object({ name: Name });
const ListQuery = Type.Object(
  {
    limit: Type.Optional(LimitParam),
    cursor: Type.Optional(Type.String({ ...Name, description: "the previous page's nextCursor: the page starts after this name, in name order (a position: any name will do)" })),
    consistency: Type.Optional(Type.Union([Type.Literal('linearizable'), Type.Literal('stale')])),
  },
  { additionalProperties: false },
);
const ConsistencyQuery = Type.Object({ consistency: Type.Optional(Type.Union([Type.Literal('linearizable'), Type.Literal('stale')])) }, { additionalProperties: false });

// What the routes answer (ServiceView), for the OpenAPI document (documentedResponse).
const ReplicaReply = Type.Object({
  taskId: Type.String(),
  version: Type.Integer(),
  state: Type.String(),
  desiredState: Type.String(),
  draining: Type.Boolean({ description: "its worker is being drained: it is being stopped there, to be placed again elsewhere, and serves no more" }),
  health: Nullable(Type.String()),
  workerId: Nullable(Type.String()),
  attempt: Type.Integer({ minimum: 1 }),
  ports: Type.Array(Type.Object({ name: Type.String(), hostPort: Type.Integer(), address: Type.String() })),
  failure: Nullable(Type.String({ description: 'why it failed by its own doing: unhealthy now, or its previous attempt exited, could not start or turned unhealthy' })),
});
const ServiceReply = Type.Object(
  {
    name: Type.String(),
    replicas: Type.Object({ desired: Type.Integer(), running: Type.Integer(), healthy: Type.Integer() }),
    version: Type.Integer(),
    previousVersion: Nullable(Type.Integer()),
    versions: Type.Array(Type.Integer()),
    spec: TaskSpecSchema,
    update: UpdateSchema,
    rollout: Type.Object({
      state: Type.Union(['stable', 'updating', 'rolling-back', 'paused', 'rolled-back'].map((s) => Type.Literal(s))),
      fromVersion: Nullable(Type.Integer()),
      message: Nullable(Type.String()),
    }),
    waiting: Nullable(Type.String({ description: 'why replicas of the current version wait: no worker can take one now, no room in the namespace quota, or its assignment failed (no free port...)' })),
    tasks: Type.Array(ReplicaReply, { description: 'every replica not yet ended, by task id' }),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { description: 'the service' },
);
const ServiceListReply = Type.Object({ items: Type.Array(ServiceReply), nextCursor: Nullable(Type.String()) }, { description: 'a page of services, in name order' });
const ServiceDeletedReply = Type.Object({ name: Type.String(), deleted: Type.Literal(true), stopping: Type.Integer({ description: 'replicas it stopped: pending ones at once, the others as their workers stop them' }) }, { description: 'the service is forgotten' });

export interface ServiceRoutesOptions {
  services: ServicesService;
}

export const serviceRoutes: FastifyPluginAsync<ServiceRoutesOptions> = async (app, { services }) => {
  app.post<{ Body: Static<typeof CreateBody> }>('/v1/services', { schema: { body: CreateBody, documentedResponse: { 201: ServiceReply }, errorCodes: ['QUOTA_EXCEEDED', 'SERVICE_EXISTS'] } }, async (req, reply) => {
    const view = await services.createService(req.body as ServiceCreateRequest, requestContext(req));
    return reply.code(201).send(view);
  });

  app.get<{ Querystring: Static<typeof ListQuery> }>('/v1/services', { schema: { querystring: ListQuery, documentedResponse: { 200: ServiceListReply } } }, async (req) => {
    const q = req.query;
    return services.listServices(
      { limit: listLimit(q.limit), consistency: q.consistency ?? 'linearizable', ...(q.cursor === undefined ? {} : { cursor: q.cursor }) },
      requestContext(req),
    );
  });

  app.get<{ Params: Static<typeof NameParams>; Querystring: Static<typeof ConsistencyQuery> }>(
    '/v1/services/:name',
    { schema: { params: NameParams, querystring: ConsistencyQuery, documentedResponse: { 200: ServiceReply } } },
    async (req) => services.getService(req.params.name, req.query.consistency ?? 'linearizable', requestContext(req)),
  );

  app.patch<{ Params: Static<typeof NameParams>; Body: Static<typeof PatchBody> }>(
    '/v1/services/:name',
    { schema: { params: NameParams, body: PatchBody, documentedResponse: { 200: ServiceReply }, errorCodes: ['QUOTA_EXCEEDED', 'SERVICE_VERSION_MISMATCH'] } },
    async (req) => {
      // ifVersion alone changes nothing: refused as {} is, not a 200 that did nothing.
      const fields = Object.keys(req.body);
      if (fields.length === 1 && fields[0] === 'ifVersion') {
        const changes = Object.keys(PatchBody.properties).filter((k) => k !== 'ifVersion');
        throw new MinkubeError('INVALID_BODY', `body: ifVersion alone changes nothing; give at least one of ${changes.join(', ')}`);
      }
      return services.updateService(req.params.name, req.body as ServicePatchRequest, requestContext(req));
    },
  );

  app.post<{ Params: Static<typeof NameParams> }>('/v1/services/:name/rollback', { schema: { params: NameParams, documentedResponse: { 200: ServiceReply }, errorCodes: ['SERVICE_ROLLBACK_REFUSED'] }, preValidation: takesNoBody }, async (req) =>
    services.rollbackService(req.params.name, requestContext(req)),
  );

  app.delete<{ Params: Static<typeof NameParams> }>('/v1/services/:name', { schema: { params: NameParams, documentedResponse: { 200: ServiceDeletedReply } } }, async (req) =>
    services.deleteService(req.params.name, requestContext(req)),
  );
};
