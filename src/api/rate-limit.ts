// Rate limits per caller, as token buckets: each API token (by accessor) at its role's rate and burst, and each client
// address for requests that carry no valid credential (login and join are where credentials are guessed; a missing,
// unknown, revoked, expired or malformed token or session is another guess). Checked in onRequest after the auth plugin
// has named the caller and before a body is read, so a refused request costs little; a request the auth plugin is
// about to answer 401 draws from its address's bucket there (RateLimiter.unauthenticated), so a flood of guesses is
// answered 429 past the bucket like any other anonymous flood.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';

export interface RateLimit {
  /** Tokens added per second: the rate a caller may keep up. */
  requestsPerS: number;
  /** The bucket's size: the requests a caller may make at once after a quiet spell. */
  burst: number;
}

export interface RateLimitOptions {
  /** By role name (built-in or a custom policy's); a role without an entry is limited like 'viewer'. */
  roles: Readonly<Record<string, RateLimit>>;
  /** Requests without a principal (the open routes, unknown routes), per client address. */
  anonymous: RateLimit;
  /** For tests; performance.now by default (only differences are taken). */
  nowMs?: () => number;
}

export type TakeDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/** Token buckets by key, at most `capacity` of them: the least recently used is forgotten first. */
export class TokenBuckets {
  // A Map iterates in insertion order: re-inserting on every use keeps the least recently used first.
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 1, 'a bucket table holds at least one bucket');
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from key's bucket if it holds one; otherwise says how long until it will. */
  take(key: string, limit: RateLimit, nowMs: number): TakeDecision {
    const bucket = this.buckets.get(key);
    // A new (or forgotten) caller starts full; a clock that stepped back adds nothing.
    const refill = bucket === undefined ? limit.burst : bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * limit.requestsPerS) / 1000;
    const tokens = Math.min(limit.burst, refill);
    this.buckets.delete(key);
    if (tokens >= 1) {
      this.put(key, { tokens: tokens - 1, atMs: nowMs });
      return { allowed: true };
    }
    this.put(key, { tokens, atMs: nowMs });
    return { allowed: false, retryAfterMs: Math.ceil(((1 - tokens) * 1000) / limit.requestsPerS) };
  }

  private put(key: string, bucket: { tokens: number; atMs: number }): void {
    this.buckets.set(key, bucket);
    // The least recently used bucket has had the longest to refill: forgetting it (a full bucket again) gives least away.
    if (this.buckets.size > this.capacity) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

type Bucket = { table: 'tokens' | 'addresses'; key: string; limit: RateLimit; who: string };

/** Where a request's token comes from, or null when it is not limited. */
function bucketOf(req: FastifyRequest, opts: RateLimitOptions): Bucket | null {
  const principal = req.principal;
  // Cluster nodes are not limited: workers' heartbeats and assignment fetches come at their own intervals, and
  // managers forward requests already limited where they arrived and send snapshot chunks one at a time. Their
  // volume is bounded by those intervals and queues; a limit here would turn load into false failures (a worker
  // marked unreachable, a forwarded write refused).
  if (principal?.kind === 'node') return null;
  if (principal?.kind === 'token') {
    const limit = roleLimit(opts, principal.role);
    return { table: 'tokens', key: principal.accessor, limit, who: `this token (role ${principal.role})` };
  }
  const route = `${req.method} ${req.routeOptions.url ?? ''}`;
  if (probeRoutes.has(route)) return null;
  // A path or method that does not exist is not authenticated (no route, no permission): say so rather than
  // "without a token" to a caller who sent one.
  const who = req.routeOptions.url === undefined ? `${req.ip} for paths or methods that do not exist (no token is checked there)` : `${req.ip} without a token`;
  return addressBucket(req, opts, who);
}

/** req.ip is the connection's address: a forwarded-for header is the client's to write, so it is not believed. */
function addressBucket(req: FastifyRequest, opts: RateLimitOptions, who: string): Bucket {
  return { table: 'addresses', key: req.ip, limit: opts.anonymous, who };
}

/**
 * Health and readiness answer from memory and are what load balancers and probes poll, often many behind one address:
 * limiting them would report a healthy manager as down, and would save nothing (refusing costs what answering does).
 */
export const probeRoutes: ReadonlySet<string> = new Set(['GET /health', 'HEAD /health', 'GET /ready', 'HEAD /ready', 'GET /status', 'HEAD /status']);

function roleLimit(opts: RateLimitOptions, role: string): RateLimit {
  if (Object.hasOwn(opts.roles, role)) return opts.roles[role]!;
  return Object.hasOwn(opts.roles, 'viewer') ? opts.roles['viewer']! : opts.anonymous;
}

function checkLimit(limit: RateLimit, what: string): void {
  const ok = (n: number) => Number.isFinite(n) && n > 0;
  assert(ok(limit.requestsPerS) && ok(limit.burst) && limit.burst >= 1, `${what}: a rate limit needs requestsPerS > 0 and burst >= 1`);
}

/** The buckets of one app: the rate-limit plugin's hook and the auth plugin's 401s take from the same ones. */
export class RateLimiter {
  private readonly tables = { tokens: new TokenBuckets(limits.rateLimitTokenBucketsMax), addresses: new TokenBuckets(limits.rateLimitAddressBucketsMax) };
  private readonly nowMs: () => number;

  constructor(private readonly opts: RateLimitOptions) {
    for (const [role, limit] of Object.entries(opts.roles)) checkLimit(limit, `role ${role}`);
    checkLimit(opts.anonymous, 'anonymous');
    // Monotonic: after a wall-clock step back, buckets would not refill (every client limited) for the length of the step.
    this.nowMs = opts.nowMs ?? (() => performance.now());
  }

  /** The request's own bucket, by the principal the auth plugin named (none: its address's); RATE_LIMITED when empty. */
  check(req: FastifyRequest, reply: FastifyReply): MinkubeError | null {
    const bucket = bucketOf(req, this.opts);
    return bucket === null ? null : this.take(bucket, reply);
  }

  /**
   * A request the auth plugin is about to refuse for want of a valid credential: it draws from its address's bucket
   * (the one requests without a token share), and is RATE_LIMITED instead of 401 once that is empty.
   */
  unauthenticated(req: FastifyRequest, reply: FastifyReply): MinkubeError | null {
    return this.take(addressBucket(req, this.opts, `${req.ip} without a valid token`), reply);
  }

  private take(bucket: Bucket, reply: FastifyReply): MinkubeError | null {
    const decision = this.tables[bucket.table].take(bucket.key, bucket.limit, this.nowMs());
    if (decision.allowed) return null;
    const retryAfterS = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    void reply.header('retry-after', String(retryAfterS));
    const { requestsPerS, burst } = bucket.limit;
    return new MinkubeError('RATE_LIMITED', `too many requests from ${bucket.who}: at most ${requestsPerS}/s, ${burst} at once; retry in ${retryAfterS} s`);
  }
}

export interface RateLimitPluginOptions {
  limiter: RateLimiter;
}

const rateLimitPluginImpl: FastifyPluginAsync<RateLimitPluginOptions> = async (app, { limiter }) => {
  // A callback hook, not an async one: every request passes it.
  app.addHook('onRequest', (req, reply, done) => {
    const refused = limiter.check(req, reply);
    if (refused === null) done();
    else done(refused);
  });
};

// Like fastify-plugin: the hook applies to the whole app, not only inside this plugin.
(rateLimitPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(rateLimitPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'minkube-rate-limit';

/**
 * Register after the auth plugin (its hook must have named the caller) and before the routes; give the auth plugin
 * the same limiter's `unauthenticated` (limitUnauthenticated), so that its 401s draw from the address buckets too.
 */
export const rateLimitPlugin: FastifyPluginAsync<RateLimitPluginOptions> = rateLimitPluginImpl;
