// The base of every Minkube HTTP app: JSON only, request ids, deadlines, TypeBox validation, one error handler.
// Apps add their routes as plugins on top; nothing here listens (tests use app.inject).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { fastify, LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { limits } from '../lib/limits.js';
import { frameworkErrorHandler, installErrorHandling } from './errors.js';
import { typeboxValidatorCompiler } from './validation.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Absolute, Date.now() based: when the request arrived plus the app's request timeout. */
    deadlineMs: number;
  }
}

export interface BaseAppOptions {
  /** A pino logger, or false (the default) for none. */
  logger?: FastifyBaseLogger | false;
  bodyLimitBytes?: number;
  requestTimeoutMs?: number;
  /** Serve HTTPS with these (PEM key, certificate, the CA that client certificates must chain to). */
  https?: HttpsOptions;
}

export interface HttpsOptions {
  key: string;
  cert: string;
  ca: string;
  requestCert: boolean;
  /** true: a connection without a valid client certificate is refused during the handshake. */
  rejectUnauthorized: boolean;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export const requestIdHeader = 'x-request-id';
// An incoming id is echoed into logs and headers: accept only short, plain ones.
const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

function genReqId(req: IncomingMessage): string {
  const incoming = req.headers[requestIdHeader];
  return typeof incoming === 'string' && requestIdPattern.test(incoming) ? incoming : randomUUID();
}

export function buildBaseApp(opts: BaseAppOptions): FastifyInstance {
  const bodyLimitBytes = opts.bodyLimitBytes ?? limits.httpBodyBytesDefault;
  const requestTimeoutMs = opts.requestTimeoutMs ?? limits.requestTimeoutMsDefault;
  const common = {
    bodyLimit: bodyLimitBytes,
    genReqId,
    // One line per request at info would drown the Raft logs: requests are logged at debug (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    // Percent-encoded keys are up to three times their byte length.
    routerOptions: { maxParamLength: limits.kvKeyBytesMax * 3 },
    frameworkErrors: frameworkErrorHandler(bodyLimitBytes),
  };
  const withTls = opts.https === undefined ? common : { ...common, https: opts.https };
  // fastify types an HTTPS app as another instance type; every route and hook here is the same for both.
  const app = (opts.logger ? fastify({ ...withTls, loggerInstance: opts.logger }) : fastify({ ...withTls, logger: false })) as unknown as FastifyInstance;
  // JSON only: any other content type is 415, rather than a text body failing validation with a 400.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.decorateRequest('deadlineMs', 0);
  app.addHook('onRequest', async (req, reply) => {
    req.deadlineMs = Date.now() + requestTimeoutMs;
    void reply.header(requestIdHeader, req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  installErrorHandling(app, bodyLimitBytes);
  return app;
}
