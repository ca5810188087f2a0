// GET /metrics: this node's metrics in the Prometheus text format; on managers also GET /v1/workers/:id/metrics, a
// worker's metrics fetched by the manager (a worker's API answers only managers' certificates, a Prometheus server
// has a bearer token). observeRequests times every request by its route template.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { WorkerIdParams } from './tasks-schemas.js';
import { bodyAnswer, textSchema } from '../documented-answers.js';
import { requestObservers, routeTemplateOf } from '../errors.js';

export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface MetricsRoutesOptions {
  metrics: MetricsEndpoint;
  /** Managers: a worker's own /metrics text, by its id (WORKER_NOT_FOUND, UNREACHABLE as any worker call). */
  workerMetrics?: (workerId: string) => Promise<string>;
}

const metricsAnswer = (whose: string) => bodyAnswer(`${whose} metrics in the Prometheus text format`, { 'text/plain': textSchema });

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, opts) => {
  const { metrics, workerMetrics } = opts;
  app.get('/metrics', { schema: { documentedResponse: { 200: metricsAnswer("this node's") } } }, async (_req, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
  if (workerMetrics !== undefined) {
    app.get('/v1/workers/:id/metrics', { schema: { params: WorkerIdParams, documentedResponse: { 200: metricsAnswer("the worker's own") } } }, async (req, reply) => {
      const { id } = req.params as { id: string };
      const text = await workerMetrics(id);
      return reply.type(metrics.contentType).send(text);
    });
  }
};

/**
 * Calls observe once per answered request with its route template (never the URL: `/v1/kv/*`; a 405 of a method
 * the path's route does not take is that route's; "unmatched" for a 404 of no route), method, status code and
 * duration. A synchronous hook: no promise per request.
 */
export function observeRequests(app: FastifyInstance, observe: (route: string, method: string, code: number, seconds: number) => void): void {
  requestObservers.set(app, observe);
  app.addHook('onResponse', (req, reply, done) => {
    observe(routeTemplateOf(req) ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}
