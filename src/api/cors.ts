// Cross-origin requests from the cluster's own managers only: the dashboard served by one manager falls over to
// another when its manager goes down, and that one is another origin (scheme, host and port). Any other origin
// gets no CORS headers, so a browser keeps its pages from reading the API. Preflights are answered here, before
// authentication and rate limits (they carry no credential).
import type { FastifyPluginAsync } from 'fastify';
import { limits } from '../lib/limits.js';

export interface CorsOptions {
  /** The origins allowed now (`https://host:port` of every member's API address). */
  origins(): ReadonlySet<string>;
}

const allowMethods = 'GET, POST, PUT, PATCH, DELETE';
const allowHeaders = 'authorization, content-type, idempotency-key, x-request-id';
const exposeHeaders = 'x-request-id, retry-after, www-authenticate';

const corsPluginImpl: FastifyPluginAsync<CorsOptions> = async (app, opts) => {
  // A callback hook, not an async one: every request passes it, and most carry no Origin.
  app.addHook('onRequest', (req, reply, done) => {
    const origin = req.headers.origin;
    if (origin === undefined) return done();
    void reply.header('vary', 'origin');
    if (!opts.origins().has(origin)) return done();
    void reply.header('access-control-allow-origin', origin);
    void reply.header('access-control-expose-headers', exposeHeaders);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      // Answered here: fastify runs no further hook or handler for a reply sent in a hook.
      void reply
        .code(204)
        .header('access-control-allow-methods', allowMethods)
        .header('access-control-allow-headers', allowHeaders)
        .header('access-control-max-age', '600')
        .send();
      return;
    }
    done();
  });
};

// Like fastify-plugin: the hook applies to the whole app, 404s (unrouted preflights) included.
(corsPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(corsPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'minkube-cors';

export const corsPlugin: FastifyPluginAsync<CorsOptions> = corsPluginImpl;

/**
 * `scheme://apiAddress` of every member, now and since this process started: a page served by a member that was
 * removed since (say, a dead one the operator removed from that very page) still reaches the others.
 */
export function memberOrigins(scheme: 'http' | 'https', apiAddresses: () => readonly string[]): () => ReadonlySet<string> {
  const seen = new Set<string>();
  return () => {
    for (const a of apiAddresses()) {
      if (a === '') continue;
      const origin = `${scheme}://${a}`;
      if (seen.has(origin)) continue;
      // Oldest first out: a long-lived cluster that replaced many members keeps the newest.
      if (seen.size >= limits.corsOriginsMax) seen.delete(seen.values().next().value as string);
      seen.add(origin);
    }
    return seen;
  };
}
