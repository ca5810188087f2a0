// A manager app with every route group, secure or insecure as the daemon builds them, over services nobody calls:
// for tests that read only what the routes declare (the OpenAPI document, the route table).
import type { FastifyInstance } from 'fastify';
import type { TokenRecord } from '../../src/api/auth.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { AdminService } from '../../src/api/routes/admin.js';
import type { MetricsEndpoint } from '../../src/api/routes/metrics.js';
import type { RaftPeerService } from '../../src/api/routes/raft-internal.js';
import type { StatusSource } from '../../src/api/routes/status.js';
import type { PlacementService } from '../../src/contracts/placement.js';
import type { ServicesService } from '../../src/contracts/service-model.js';
import type {
  AuditService, AuthService, BackupService, EventsService, JoinService, MembershipService, RetentionService, TasksService,
} from '../../src/contracts/services.js';
import { FakeManagerService } from '../api/fake-service.js';

export function everyRouteApp(security: boolean): FastifyInstance {
  const tokens = new Map<string, TokenRecord>();
  return buildManagerApp({
    service: new FakeManagerService(),
    tasks: {} as TasksService,
    services: {} as ServicesService,
    placement: {} as PlacementService,
    membership: {} as MembershipService,
    raftPeer: {} as RaftPeerService,
    auth: {} as AuthService,
    audit: { record: () => undefined } as unknown as AuditService,
    admin: {} as AdminService,
    backup: { status: () => null } as unknown as BackupService,
    retention: {} as RetentionService,
    events: {} as EventsService,
    status: {} as StatusSource,
    metrics: { endpoint: {} as MetricsEndpoint, workerMetrics: async () => '' },
    // An insecure cluster has no CA: its join routes say so (insecureJoinRoutes).
    ...(security
      ? { join: {} as JoinService, security: { resolveToken: (a: string) => tokens.get(a) ?? null }, rateLimits: { roles: {}, anonymous: { requestsPerS: 1000, burst: 1000 } } }
      : {}),
  });
}
