// POST /v1/admin/reload through the managers' app: open in an insecure cluster, admins only in a secure one, and the
// reloader's refusal (no config file) answered in the error shape.
import { describe, expect, it } from 'vitest';
import type { TokenRecord } from '../../src/api/auth.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { AdminService, ReloadReport } from '../../src/api/routes/admin.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { newApiToken } from '../../src/security/tokens.js';
import { FakeManagerService } from '../api/fake-service.js';

const report: ReloadReport = { node: 'm1', applied: [{ key: 'log.level', from: 'info', to: 'debug' }], refused: [{ key: 'raft.electionTimeoutMs', reason: 'restart it' }], ignored: [] };
const admin: AdminService = { reload: async () => report };

describe('POST /v1/admin/reload', () => {
  it('answers the report with insecure: true (no token)', async () => {
    const app = buildManagerApp({ service: new FakeManagerService(), admin });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/admin/reload' });
      expect([res.statusCode, res.json()]).toEqual([200, report]);
    } finally {
      await app.close();
    }
  });

  it('needs an admin token in a secure cluster', async () => {
    const tokens = new Map<string, TokenRecord>();
    const mint = (role: string) => {
      const t = newApiToken();
      tokens.set(t.accessor, { role, secretHash: t.secretHash });
      return t.token;
    };
    const app = buildManagerApp({ service: new FakeManagerService(), admin, security: { resolveToken: (a) => tokens.get(a) ?? null } });
    try {
      const as = (token?: string) => app.inject({ method: 'POST', url: '/v1/admin/reload', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      expect((await as()).statusCode).toBe(401);
      const operator = await as(mint('operator'));
      expect([operator.statusCode, operator.json().error.code, operator.json().error.message]).toEqual([403, 'FORBIDDEN', expect.stringContaining('cluster:write')]);
      expect((await as(mint('admin'))).json()).toEqual(report);
    } finally {
      await app.close();
    }
  });

  it('answers a refusal in the error shape', async () => {
    const app = buildManagerApp({ service: new FakeManagerService(), admin: { reload: async () => Promise.reject(new MinkubeError('RELOAD_REFUSED', 'manager m1 was started without a config file')) } });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/admin/reload' });
      expect([res.statusCode, res.json()]).toEqual([409, { error: { code: 'RELOAD_REFUSED', message: 'manager m1 was started without a config file' } }]);
    } finally {
      await app.close();
    }
  });
});
