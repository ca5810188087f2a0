// The base of every Minkube HTTP app: JSON only, request ids, deadlines, TypeBox validation, one error handler.
// Apps add their routes as plugins on top; nothing here listens (tests use app.inject).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerOptions } from 'node:http';
import { fastify, LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { limits } from '../lib/limits.js';
import { MinkubeError } from '../lib/errors.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandling } from './errors.js';
import { schemaController } from './schema-compilers.js';
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
  /** The server's defences against slow and hostile clients (tests shorten them; default from limits). */
  server?: Partial<ServerLimits>;
}

export interface ServerLimits {
  headersTimeoutMs: number;
  /** The whole request, body included (not the app's deadline, requestTimeoutMs above). */
  receiveTimeoutMs: number;
  timeoutCheckIntervalMs: number;
  keepAliveTimeoutMs: number;
  headerBytesMax: number;
  headersCountMax: number;
  connectionsMax: number;
}

const defaultServerLimits: ServerLimits = {
  headersTimeoutMs: limits.httpHeadersTimeoutMs,
  receiveTimeoutMs: limits.httpRequestTimeoutMs,
  timeoutCheckIntervalMs: limits.httpTimeoutCheckIntervalMs,
  keepAliveTimeoutMs: limits.httpKeepAliveTimeoutMs,
  headerBytesMax: limits.httpHeaderBytesMax,
  headersCountMax: limits.httpHeadersCountMax,
  connectionsMax: limits.httpConnectionsMax,
};

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
  const server: ServerLimits = { ...defaultServerLimits, ...opts.server };
  const common = {
    bodyLimit: bodyLimitBytes,
    genReqId,
    // Serializers compiled with a route's first answer, and no Ajv: start-up stays cheap (schema-compilers.ts).
    schemaController,
    // One line per request at info would drown the Raft logs: requests are logged at debug (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    // Percent-encoded keys are up to three times their byte length.
    routerOptions: { maxParamLength: limits.kvKeyBytesMax * 3 },
    frameworkErrors: frameworkErrorHandler(bodyLimitBytes),
    // Errors of Node's HTTP parser and its timeouts, before fastify sees a request: answered in our JSON shape.
    clientErrorHandler,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    requestTimeout: server.receiveTimeoutMs,
    http: nodeServerOptions(server),
  };
  // https.createServer takes the same server options as http.createServer (fastify passes `http` only to the latter).
  const withTls = opts.https === undefined ? common : { ...common, https: { ...opts.https, ...nodeServerOptions(server) } };
  // fastify types an HTTPS app as another instance type; every route and hook here is the same for both.
  const app = (opts.logger ? fastify({ ...withTls, loggerInstance: opts.logger }) : fastify({ ...withTls, logger: false })) as unknown as FastifyInstance;
  // JSON only: any other content type is 415, rather than a text body failing validation with a 400.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.decorateRequest('deadlineMs', 0);
  // Past it, new connections are closed at once: a flood of idle clients cannot take every file descriptor.
  app.server.maxConnections = server.connectionsMax;
  app.addHook('onRequest', async (req, reply) => {
    // Node bounds the header bytes, not their number; many tiny headers cost as much to log and to forward.
    const headers = req.raw.rawHeaders.length / 2;
    if (headers > server.headersCountMax) throw new MinkubeError('HEADERS_TOO_LARGE', `${headers} headers; at most ${server.headersCountMax}`);
    req.deadlineMs = Date.now() + requestTimeoutMs;
    void reply.header(requestIdHeader, req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  installErrorHandling(app, bodyLimitBytes);
  return app;
}

/** Node's own bounds: how long the header block and the whole request may take, and how large the headers may be. */
function nodeServerOptions(server: ServerLimits): ServerOptions {
  return {
    headersTimeout: server.headersTimeoutMs,
    requestTimeout: server.receiveTimeoutMs,
    connectionsCheckingInterval: server.timeoutCheckIntervalMs,
    maxHeaderSize: server.headerBytesMax,
  };
}
