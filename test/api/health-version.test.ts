// GET /health says which build a node runs, and a manager's command version: the leader asks it of every member
// before proposing a newer command (manager/cluster-version.ts), and an operator reads it before an upgrade.
import { describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { commandVersion } from '../../src/kv/commands.js';
import { buildInfo } from '../../src/lib/build-info.js';
import { FakeManagerService } from './fake-service.js';

describe('GET /health', () => {
  it("says the manager's command version and its build", async () => {
    const app = buildManagerApp({ service: new FakeManagerService(), commandVersion });
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', commandVersion, build: buildInfo() });
    expect(buildInfo().version).toMatch(/^\d+\.\d+\.\d+/);
    await app.close();
  });
});
