// W3C traceparent on every request: a server span under the caller's context (or a new trace when spans are
// exported), its context on req.traceparent for the service to carry on (a proposal, an assignment), and the trace
// id on every log line of the request. A request without the header, on a node that exports nothing, costs one
// header lookup.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { endSpan, parseTraceparent, SpanKind, startSpan, tracingExported, type StartedSpan } from '../lib/trace.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's span context as a traceparent (the caller's when nothing is recorded); undefined: untraced. */
    traceparent: string | undefined;
    traceSpan: StartedSpan | null;
  }
}

/**
 * Polled routes and documents: never the root of a new trace (a caller's traceparent is still followed). GET
 * /v1/cluster is polled several times a second (minkube up's leader watch, the managers' dashboard feeds, status);
 * each worker heartbeats and fetches its assignments every second or so, a trace each that a collector would drown in.
 */
const quietRoutes: ReadonlySet<string> = new Set([
  '/health', '/ready', '/metrics', '/status', '/openapi.json', '/v1/cluster', '/v1/workers/:id/heartbeat', '/v1/workers/:id/assignments',
]);

const tracingPluginImpl: FastifyPluginAsync = async (app) => {
  app.decorateRequest('traceparent', undefined);
  app.decorateRequest('traceSpan', null);
  // Callback hooks, not async ones: no promise per request for the untraced majority.
  app.addHook('onRequest', (req, reply, done) => {
    const header = req.headers.traceparent;
    if (header !== undefined || tracingExported()) {
      startRequestSpan(req, header);
      // A caller that gave up (a push that timed out, to be sent again) closes the connection, and then no
      // onResponse comes: end the span here, or it is never exported and what ran under it (a container start) is
      // left without its parent.
      if (req.traceSpan !== null) reply.raw.once('close', () => endAbandoned(req));
    }
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const s = req.traceSpan;
    if (s !== null) {
      req.traceSpan = null;
      s.span.setAttribute('http.response.status_code', reply.statusCode);
      endSpan(s, reply.statusCode >= 500 ? `status ${reply.statusCode}` : undefined);
    }
    done();
  });
};

function endAbandoned(req: FastifyRequest): void {
  const s = req.traceSpan;
  if (s === null) return;
  req.traceSpan = null;
  endSpan(s, 'the caller closed the connection before the answer');
}

function startRequestSpan(req: FastifyRequest, header: string | string[] | undefined): void {
  const parent = typeof header === 'string' ? parseTraceparent(header) : null;
  const route = req.routeOptions.url;
  if (parent === null && (route === undefined || quietRoutes.has(route) || route.startsWith('/docs'))) return;
  const s = startSpan(`${req.method} ${route ?? 'unknown route'}`, parent, { 'http.request.method': req.method, 'http.route': route ?? '' }, SpanKind.SERVER);
  if (s === null) return;
  req.traceSpan = s;
  req.traceparent = s.traceparent;
  req.log = req.log.child({ traceId: s.traceId });
}

// Like fastify-plugin: the hooks apply to the whole app.
(tracingPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(tracingPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'minkube-tracing';

/** Register before the routes: `void app.register(tracingPlugin)`. */
export const tracingPlugin: FastifyPluginAsync = tracingPluginImpl;
