// Who may do what: every built-in role against every resource and verb, custom policies, and kv key prefixes.
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { authorize, isPolicyName, isRoleName, PolicySchema, resources, verbs, type Policy, type Resource, type RoleName } from '../../src/security/policy.js';

// The whole grid, written out: R = read only, RW = read and write, - = nothing.
const grid: Record<RoleName, Record<Resource, 'RW' | 'R' | '-'>> = {
  admin: { kv: 'RW', tasks: 'RW', workers: 'RW', members: 'RW', leader: 'RW', tokens: 'RW', audit: 'RW', metrics: 'RW', cluster: 'RW', snapshot: 'RW', gc: 'RW', services: 'RW' },
  operator: { kv: 'R', tasks: 'RW', workers: 'RW', members: 'RW', leader: 'RW', tokens: '-', audit: '-', metrics: 'R', cluster: 'R', snapshot: 'R', gc: 'RW', services: 'RW' },
  developer: { kv: '-', tasks: 'RW', workers: '-', members: '-', leader: '-', tokens: '-', audit: '-', metrics: '-', cluster: 'R', snapshot: '-', gc: '-', services: 'RW' },
  viewer: { kv: 'R', tasks: 'R', workers: 'R', members: 'R', leader: '-', tokens: '-', audit: '-', metrics: 'R', cluster: 'R', snapshot: '-', gc: '-', services: 'R' },
};

const cases = (Object.keys(grid) as RoleName[]).flatMap((role) =>
  resources.flatMap((resource) => verbs.map((verb) => ({ role, resource, verb, expected: grid[role][resource].includes(verb === 'read' ? 'R' : 'W') }))),
);

describe('built-in roles', () => {
  it.each(cases)('$role $resource:$verb -> $expected', ({ role, resource, verb, expected }) => {
    const decision = authorize({ role }, { resource, verb });
    expect(decision.allowed).toBe(expected);
    if (!decision.allowed) expect(decision.missing).toBe(`${resource}:${verb}`);
  });

  it('lets a developer read and write kv under its own prefix only, and names the key it lacks', () => {
    const dev = { role: 'developer', keyPrefix: 'team-a/' };
    expect(authorize(dev, { resource: 'kv', verb: 'write', key: 'team-a/x' })).toEqual({ allowed: true });
    expect(authorize(dev, { resource: 'kv', verb: 'read', key: 'team-a/deep/y' })).toEqual({ allowed: true });
    expect(authorize(dev, { resource: 'kv', verb: 'write', key: 'team-b/x' })).toEqual({ allowed: false, missing: 'kv:write on key "team-b/x"' });
    expect(authorize(dev, { resource: 'kv', verb: 'read', key: 'team-a' })).toMatchObject({ allowed: false });
    // Without a key there is nothing under the prefix to allow.
    expect(authorize(dev, { resource: 'kv', verb: 'read' })).toMatchObject({ allowed: false });
  });

  it('denies an unknown role everything', () => {
    expect(authorize({ role: 'root' }, { resource: 'cluster', verb: 'read' })).toEqual({ allowed: false, missing: 'cluster:read' });
  });
});

describe('custom policies', () => {
  const ci: Policy = {
    name: 'ci',
    rules: [
      { effect: 'allow', resource: '*', verbs: ['read'] },
      { effect: 'allow', resource: 'tasks', verbs: ['*'] },
      { effect: 'allow', resource: 'kv', verbs: ['read', 'write'], keyPrefix: 'ci/' },
      { effect: 'deny', resource: 'kv', verbs: ['*'], keyPrefix: 'ci/secret/' },
      { effect: 'deny', resource: 'audit', verbs: ['read'] },
    ],
  };
  const principal = { role: 'ci', policy: ci };

  it('allows what a rule allows and nothing else', () => {
    expect(authorize(principal, { resource: 'tasks', verb: 'write' }).allowed).toBe(true);
    expect(authorize(principal, { resource: 'workers', verb: 'read' }).allowed).toBe(true);
    expect(authorize(principal, { resource: 'workers', verb: 'write' })).toEqual({ allowed: false, missing: 'workers:write' });
    expect(authorize(principal, { resource: 'kv', verb: 'write', key: 'ci/build' }).allowed).toBe(true);
    expect(authorize(principal, { resource: 'kv', verb: 'write', key: 'prod/x' }).allowed).toBe(false);
  });

  it('lets a deny win over any allow', () => {
    expect(authorize(principal, { resource: 'audit', verb: 'read' })).toEqual({ allowed: false, missing: 'audit:read' });
    expect(authorize(principal, { resource: 'kv', verb: 'read', key: 'ci/secret/token' })).toEqual({ allowed: false, missing: 'kv:read on key "ci/secret/token"' });
    // A deny scoped to keys is not dodged by a request that names no key.
    expect(authorize(principal, { resource: 'kv', verb: 'read' }).allowed).toBe(false);
  });

  it('decides instead of the role it is attached to', () => {
    expect(authorize({ role: 'admin', policy: { name: 'none', rules: [] } }, { resource: 'cluster', verb: 'read' }).allowed).toBe(false);
  });

  it('are validated by their schema', () => {
    expect(Value.Check(PolicySchema, ci)).toBe(true);
    const bad: unknown[] = [
      { name: 'Bad Name', rules: [] },
      { name: 'x', rules: [{ effect: 'maybe', resource: 'kv', verbs: ['read'] }] },
      { name: 'x', rules: [{ effect: 'allow', resource: 'everything', verbs: ['read'] }] },
      { name: 'x', rules: [{ effect: 'allow', resource: 'kv', verbs: [] }] },
      { name: 'x', rules: [{ effect: 'allow', resource: 'kv', verbs: ['delete'] }] },
      { name: 'x', rules: [{ effect: 'allow', resource: 'kv', verbs: ['read'], extra: 1 }] },
    ];
    for (const doc of bad) expect(Value.Check(PolicySchema, doc)).toBe(false);
  });
});

describe('names', () => {
  it('knows the built-in roles, and what a custom policy may be called', () => {
    expect(['admin', 'operator', 'developer', 'viewer'].every(isRoleName)).toBe(true);
    expect(isRoleName('root')).toBe(false);
    expect(isRoleName('manager')).toBe(false);
    expect(isPolicyName('ci-bot')).toBe(true);
    for (const s of ['', 'CI', '1ci', 'a b', 'a/b', 'x'.repeat(64)]) expect(isPolicyName(s)).toBe(false);
  });
});
