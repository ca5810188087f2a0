// Who may do what: every built-in role against every resource and verb, custom policies, kv key prefixes, and the
// no-escalation comparison of two principals.
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { authorize, escalation, isPolicyName, isRoleName, PolicySchema, resources, verbs, type Policy, type Resource, type RoleName } from '../../src/security/policy.js';

// The whole grid, written out: R = read only, RW = read and write, - = nothing.
const grid: Record<RoleName, Record<Resource, 'RW' | 'R' | '-'>> = {
  admin: { kv: 'RW', tasks: 'RW', workers: 'RW', members: 'RW', leader: 'RW', tokens: 'RW', audit: 'RW', metrics: 'RW', cluster: 'RW', snapshot: 'RW', gc: 'RW', services: 'RW' },
  operator: { kv: 'R', tasks: 'RW', workers: 'RW', members: 'RW', leader: 'RW', tokens: 'R', audit: '-', metrics: 'R', cluster: 'R', snapshot: 'R', gc: 'RW', services: 'RW' },
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

  it.each(['viewer', 'operator'] as const)('keeps a %s with a key prefix to keys under it, reading as before everywhere else', (role) => {
    const p = { role, keyPrefix: 'team-a/' };
    expect(authorize(p, { resource: 'kv', verb: 'read', key: 'team-a/x' })).toEqual({ allowed: true });
    expect(authorize(p, { resource: 'kv', verb: 'read', key: 'a' })).toEqual({ allowed: false, missing: 'kv:read on key "a"' });
    expect(authorize(p, { resource: 'kv', verb: 'read', key: 'team-a' })).toMatchObject({ allowed: false });
    expect(authorize(p, { resource: 'kv', verb: 'read' })).toMatchObject({ allowed: false });
    expect(authorize(p, { resource: 'kv', verb: 'write', key: 'team-a/x' })).toMatchObject({ allowed: false });
    expect(authorize(p, { resource: 'tasks', verb: 'read' })).toEqual({ allowed: true });
  });

  it('takes the snapshot resource (every key) from an operator kept to a prefix', () => {
    expect(authorize({ role: 'operator' }, { resource: 'snapshot', verb: 'read' }).allowed).toBe(true);
    expect(authorize({ role: 'operator', keyPrefix: 'team-a/' }, { resource: 'snapshot', verb: 'read' })).toEqual({ allowed: false, missing: 'snapshot:read' });
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

describe('escalation (what a granted principal may do that its holder may not)', () => {
  const roles = Object.keys(grid) as RoleName[];
  const clerk: Policy = {
    name: 'token-clerk',
    rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read', 'write'] }, { effect: 'deny', resource: 'kv', verbs: ['*'] }],
  };

  it('agrees with the grid: a built-in role escalates to another exactly when the grid gives the other a permission it lacks', () => {
    for (const holder of roles) {
      for (const granted of roles) {
        const beyond = resources.flatMap((r) => verbs.filter((v) => grid[granted][r].includes(v === 'read' ? 'R' : 'W') && !grid[holder][r].includes(v === 'read' ? 'R' : 'W')).map((v) => `${r}:${v}`));
        expect(escalation({ role: holder }, { role: granted }), `${holder} -> ${granted}`).toBe(beyond[0] ?? null);
      }
    }
  });

  it('names what a token-clerk (tokens:write, kv denied) lacks of an admin, and nothing of itself or less', () => {
    const p = { role: 'token-clerk', policy: clerk };
    expect(escalation(p, { role: 'admin' })).toBe('kv:read');
    expect(escalation(p, { role: 'viewer' })).toBe('kv:read');
    expect(escalation(p, p)).toBeNull();
    expect(escalation(p, { role: 'reader', policy: { name: 'reader', rules: [{ effect: 'allow', resource: 'tokens', verbs: ['read'] }] } })).toBeNull();
    // An unknown role may do nothing, so it grants nothing and holds nothing.
    expect(escalation(p, { role: 'root' })).toBeNull();
    expect(escalation({ role: 'root' }, { role: 'viewer' })).toBe('kv:read');
  });

  it('compares kv over key prefixes: a narrower prefix is within a wider one, a sibling or no prefix is not', () => {
    const dev = (keyPrefix: string) => ({ role: 'developer', keyPrefix });
    expect(escalation(dev('team-a/'), dev('team-a/sub/'))).toBeNull();
    expect(escalation(dev('team-a/sub/'), dev('team-a/'))).toBe('kv:read on keys under "team-a/"');
    expect(escalation(dev('team-a/'), dev('team-b/'))).toBe('kv:read on keys under "team-b/"');
    expect(escalation(dev('team-a/'), { role: 'developer' })).toBeNull();
    const allKv = { role: 'kv-all', policy: { name: 'kv-all', rules: [{ effect: 'allow' as const, resource: 'kv' as const, verbs: ['read' as const] }] } };
    expect(escalation(dev('team-a/'), allKv)).toBe('kv:read');
  });

  it('treats a role with a key prefix as holding only the narrowed kv permissions: it may not grant the role without one', () => {
    for (const role of ['viewer', 'operator', 'developer'] as const) {
      const narrowed = { role, keyPrefix: 'team-a/' };
      expect(escalation(narrowed, narrowed), role).toBeNull();
      expect(escalation(narrowed, { role, keyPrefix: 'team-a/sub/' }), role).toBeNull();
      expect(escalation(narrowed, { role, keyPrefix: 'team-b/' }), role).toBe('kv:read on keys under "team-b/"');
    }
    expect(escalation({ role: 'viewer', keyPrefix: 'team-a/' }, { role: 'viewer' })).toBe('kv:read');
    expect(escalation({ role: 'operator', keyPrefix: 'team-a/' }, { role: 'operator' })).toBe('kv:read');
    // The other way round: a whole role holds every narrowed copy of itself.
    expect(escalation({ role: 'viewer' }, { role: 'viewer', keyPrefix: 'team-a/' })).toBeNull();
    const kvReadUnder = { role: 'kv-a', policy: { name: 'kv-a', rules: [{ effect: 'allow' as const, resource: 'kv' as const, verbs: ['read' as const], keyPrefix: 'team-a/' }] } };
    expect(escalation(kvReadUnder, { role: 'viewer', keyPrefix: 'team-a/' })).toBe('tasks:read');
  });

  it('counts deny rules on both sides: a holder denied a prefix may not grant it; a grant denied more is within its holder', () => {
    const holder = {
      role: 'most',
      policy: { name: 'most', rules: [{ effect: 'allow', resource: '*', verbs: ['*'] }, { effect: 'deny', resource: 'kv', verbs: ['write'], keyPrefix: 'secret/' }] } as Policy,
    };
    expect(escalation(holder, { role: 'admin' })).toBe('kv:write on keys under "secret/"');
    expect(escalation(holder, { role: 'operator' })).toBeNull();
    const narrower = { role: 'n', policy: { name: 'n', rules: [...holder.policy.rules, { effect: 'deny', resource: 'kv', verbs: ['*'], keyPrefix: 'secret/' }] } as Policy };
    expect(escalation(holder, narrower)).toBeNull();
    const wider: Policy = { name: 'w', rules: [{ effect: 'allow', resource: 'kv', verbs: ['write'], keyPrefix: 'secret/x/' }] };
    expect(escalation(holder, { role: 'w', policy: wider })).toBe('kv:write on keys under "secret/x/"');
  });
});
