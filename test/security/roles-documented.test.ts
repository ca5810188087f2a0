// docs/security.md's roles table is the contract outside testers check: each built-in role's permissions, exactly as
// builtinRules gives them, with the ones no route checks marked; and the Prometheus scrape policy the README and the
// docs recommend opens the metrics routes and nothing else.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { routePermissions } from '../../src/api/auth.js';
import { metricsPolicy } from '../../src/cli/prometheus-config.js';
import { TokenPolicy } from '../../src/kv/auth-commands.js';
import { authorize, resources, roleNames, verbs, type Principal, type RoleName } from '../../src/security/policy.js';
import { repoRoot } from '../support/cluster.js';

const permissionsOf = (p: Principal): string[] =>
  resources.flatMap((resource) => verbs.filter((verb) => authorize(p, { resource, verb, key: 'team-a/x' }).allowed).map((verb) => `${resource}:${verb}`));

/** What a role may do on some key: without a key prefix, or with one (a developer's keys come only with one). */
function rolePermissions(role: RoleName): string[] {
  return [...new Set([...permissionsOf({ role }), ...permissionsOf({ role, keyPrefix: 'team-a/' })])].sort();
}

/** The permissions the route table checks, as `resource:verb`. */
const routed = new Set(Object.values(routePermissions).flatMap((p) => (typeof p === 'string' ? [] : [`${p.resource}:${p.verb}`])));

/** The roles table of docs/security.md: role -> its permissions cell. */
function documentedRows(): Map<string, string> {
  const doc = readFileSync(join(repoRoot, 'docs', 'security.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### Roles'), doc.indexOf('**What a permission implies.**'));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([a-z]+)` \| (.*?) \| /.exec(line);
    if (m !== null) rows.set(m[1]!, m[2]!);
  }
  return rows;
}

describe("docs/security.md's roles table", () => {
  const rows = documentedRows();

  it('has a row for every built-in role and no other', () => {
    expect([...rows.keys()].sort()).toEqual([...roleNames].sort());
  });

  it.each(roleNames.filter((r) => r !== 'admin'))("lists exactly the %s's permissions, marking those no route checks", (role) => {
    const cell = rows.get(role)!;
    const listed = [...cell.matchAll(/`([a-z]+:(?:read|write))`( \*\(no route[^)]*\)\*)?/g)];
    expect(listed.map((m) => m[1]).sort()).toEqual(rolePermissions(role));
    for (const [, permission, mark] of listed) expect(mark !== undefined, `${role} ${permission}`).toBe(!routed.has(permission!));
  });

  it("says admin has every permission, as it does", () => {
    expect(rows.get('admin')).toContain('every permission');
    expect(rolePermissions('admin')).toHaveLength(resources.length * verbs.length);
  });
});

describe('the Prometheus scrape policy', () => {
  it('is deploy/prometheus/metrics-policy.json, the one `minkube prometheus-config` prints, and a valid token policy', () => {
    const shipped: unknown = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'prometheus', 'metrics-policy.json'), 'utf8'));
    expect(shipped).toEqual(metricsPolicy);
    expect(Value.Check(TokenPolicy, shipped)).toBe(true);
  });

  it('opens exactly the routes that read metrics', () => {
    const p = { role: metricsPolicy.name, policy: structuredClone(metricsPolicy) as unknown as NonNullable<Principal['policy']> };
    const open = Object.entries(routePermissions).filter(([, need]) => typeof need !== 'string' && need.every === undefined && authorize(p, need).allowed);
    expect(open.map(([route]) => route).sort()).toEqual(['GET /metrics', 'GET /v1/workers/:id/metrics']);
  });
});
