// Who may do what: the built-in roles and custom policies, as pure decisions over (resource, verb, key).
// Deny wins over allow, and what no rule allows is denied.
import { Type, type Static } from '@sinclair/typebox';
import { policyNamePattern } from '../lib/patterns.js';

export const resources = ['kv', 'tasks', 'workers', 'members', 'leader', 'tokens', 'audit', 'metrics', 'cluster', 'snapshot', 'gc', 'services'] as const;
export type Resource = (typeof resources)[number];
export const verbs = ['read', 'write'] as const;
export type Verb = (typeof verbs)[number];

export const roleNames = ['admin', 'operator', 'developer', 'viewer'] as const;
export type RoleName = (typeof roleNames)[number];

const policyNameRegex = new RegExp(policyNamePattern);

export const PolicyRuleSchema = Type.Object(
  {
    effect: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    resource: Type.Union([...resources.map((r) => Type.Literal(r)), Type.Literal('*')]),
    // ["*"] first: a 400 names the variants in this order ('expected ["*"] or a list of "read", "write"').
    verbs: Type.Union([
      Type.Tuple([Type.Literal('*')]),
      Type.Array(Type.Union(verbs.map((v) => Type.Literal(v))), { minItems: 1, maxItems: verbs.length, uniqueItems: true }),
    ]),
    /** kv only: the rule covers keys that start with this. */
    keyPrefix: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);
export type PolicyRule = Static<typeof PolicyRuleSchema>;

export const PolicySchema = Type.Object(
  {
    name: Type.String({ pattern: policyNamePattern }),
    rules: Type.Array(PolicyRuleSchema, { maxItems: 256 }),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof PolicySchema>;

export interface Principal {
  role: string;
  /**
   * A built-in role's part of the key space: every kv permission the role has holds only for keys under it (a developer
   * without one has no kv permission at all). Ignored on admin, which may do everything (see builtinRules).
   */
  keyPrefix?: string;
  /** A custom policy: when present it decides instead of the role. */
  policy?: Policy;
}
export interface Need {
  resource: Resource;
  verb: Verb;
  /** kv: the key the request touches. */
  key?: string;
}
export type Decision = { allowed: true } | { allowed: false; missing: string };

/** A built-in role name (a custom policy's name is checked by isPolicyName). */
export function isRoleName(s: unknown): s is RoleName {
  return typeof s === 'string' && (roleNames as readonly string[]).includes(s);
}

/** Lower-case letters, digits and '-', starting with a letter: safe in URLs, logs and messages. */
export function isPolicyName(s: unknown): s is string {
  return typeof s === 'string' && policyNameRegex.test(s);
}

const rw: Verb[] = ['read', 'write'];
const allow = (resource: Resource | '*', ruleVerbs: Verb[] | ['*'], keyPrefix?: string): PolicyRule =>
  keyPrefix === undefined ? { effect: 'allow', resource, verbs: ruleVerbs } : { effect: 'allow', resource, verbs: ruleVerbs, keyPrefix };

/**
 * The rules of a built-in role. A key prefix narrows the role's kv rule to keys under it, whatever the role (a
 * viewer's reads, an operator's reads, a developer's reads and writes); a developer without one gets no kv access.
 *
 * Admin ignores a prefix. A new admin token with one is refused before it is proposed (AuthServiceImpl.createToken):
 * an admin mints tokens and join tokens and reads snapshots, so no prefix can bound it. Tokens stored with one before
 * that refusal (in the Raft log and snapshots) stay admins, as they always behaved: narrowing them here would still
 * leave them every other power and a snapshot of every key, and refusing them when applied would make managers of two
 * versions disagree on the replicated state.
 */
export function builtinRules(role: RoleName, keyPrefix?: string): PolicyRule[] {
  const kv = (kvVerbs: Verb[]): PolicyRule[] => [allow('kv', kvVerbs, keyPrefix)];
  switch (role) {
    case 'admin':
      return [allow('*', ['*'])];
    case 'operator':
      // A snapshot holds every key: an operator kept to a prefix does not read the snapshot resource either (no route
      // reads it with snapshot:read today; GET /v1/snapshot needs snapshot:write, which no operator has).
      return [
        ...(['tasks', 'services', 'workers', 'members', 'leader', 'gc'] as const).map((r) => allow(r, rw)),
        // Tokens are read (accessors, names, roles, policies, expiry; never a secret): an operator reads everything but
        // the audit log, which the issue keeps to admins.
        ...(['metrics', 'cluster', 'tokens'] as const).map((r) => allow(r, ['read'])),
        ...(keyPrefix === undefined ? [allow('snapshot', ['read'])] : []),
        ...kv(['read']),
      ];
    case 'developer':
      return [allow('tasks', rw), allow('services', rw), allow('cluster', ['read']), ...(keyPrefix === undefined ? [] : kv(rw))];
    case 'viewer':
      return [...(['tasks', 'services', 'workers', 'members', 'cluster', 'metrics'] as const).map((r) => allow(r, ['read'])), ...kv(['read'])];
  }
}

/**
 * A rule with a key prefix allows only a key under it, but denies whenever the key is not known: a deny rule must
 * never be dodged by a request that names no key.
 */
function ruleMatches(rule: PolicyRule, need: Need): boolean {
  if (rule.resource !== '*' && rule.resource !== need.resource) return false;
  if (!(rule.verbs as string[]).includes('*') && !(rule.verbs as string[]).includes(need.verb)) return false;
  if (rule.keyPrefix === undefined) return true;
  if (need.key === undefined) return rule.effect === 'deny';
  return need.key.startsWith(rule.keyPrefix);
}

function describeNeed(need: Need): string {
  return need.key === undefined ? `${need.resource}:${need.verb}` : `${need.resource}:${need.verb} on key ${JSON.stringify(need.key)}`;
}

function rulesOf(principal: Principal): PolicyRule[] {
  return principal.policy?.rules ?? (isRoleName(principal.role) ? builtinRules(principal.role, principal.keyPrefix) : []);
}

export function authorize(principal: Principal, need: Need): Decision {
  const rules = rulesOf(principal);
  let allowed = false;
  for (const rule of rules) {
    if (!ruleMatches(rule, need)) continue;
    if (rule.effect === 'deny') return { allowed: false, missing: describeNeed(need) };
    allowed = true;
  }
  return allowed ? { allowed: true } : { allowed: false, missing: describeNeed(need) };
}

/**
 * The first permission `granted` has that `holder` lacks, worded as authorize's `missing` (`kv:write on keys under
 * "team-a/"`); null when holder has every one of granted's. This is the no-escalation check of token creation and
 * revocation (Kubernetes RBAC's): a token may give or take away only what it holds itself.
 *
 * Every resource and verb is compared. For kv, a decision depends only on which of the rules' key prefixes a key
 * starts with; those form a chain, and the key equal to the longest of them starts with exactly the same ones. So the
 * prefixes themselves, '' (under none of them) and no key at all stand for every key there is.
 */
export function escalation(holder: Principal, granted: Principal): string | null {
  const prefixes = [...rulesOf(holder), ...rulesOf(granted)].flatMap((r) => (r.keyPrefix === undefined ? [] : [r.keyPrefix]));
  // Prefixes first: a refusal names the keys when it can.
  const keys = [...[...new Set(prefixes)].sort(), '', undefined];
  for (const resource of resources) {
    for (const verb of verbs) {
      for (const key of resource === 'kv' ? keys : [undefined]) {
        const need: Need = key === undefined ? { resource, verb } : { resource, verb, key };
        if (authorize(granted, need).allowed && !authorize(holder, need).allowed) {
          return key === undefined || key === '' ? `${resource}:${verb}` : `${resource}:${verb} on keys under ${JSON.stringify(key)}`;
        }
      }
    }
  }
  return null;
}
