// The one error path of every Minkube app: whatever fails answers { error: { code, message } } with the registry's
// HTTP status. Expected failures are MinkubeErrors; fastify's own errors are translated; anything else is INTERNAL.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Router, { type HTTPMethod } from 'find-my-way';
import { MinkubeError, type ErrorCode } from '../lib/errors.js';
import { noBodyMessage } from './validation.js';
import { isLingering, lingerThenClose, type LingerBounds } from './linger.js';

/** Translates any thrown value into the MinkubeError the client will see. */
export function toMinkubeError(err: unknown, bodyLimitBytes: number): MinkubeError {
  if (err instanceof MinkubeError) return err;
  const e = err as Partial<FastifyError> & { validationContext?: string };
  switch (e.code ?? '') {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new MinkubeError('PAYLOAD_TOO_LARGE', `the request body is larger than ${bodyLimitBytes} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new MinkubeError('UNSUPPORTED_MEDIA_TYPE', 'the content type is not supported; send application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new MinkubeError('INVALID_JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new MinkubeError('INVALID_JSON', 'the body is empty but the content type says JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new MinkubeError('INVALID_BODY', 'the body length does not match Content-Length');
    case 'FST_ERR_VALIDATION': {
      // Only a schema compiled outside typeboxValidatorCompiler ends up here.
      const code = e.validationContext === 'body' ? 'INVALID_BODY' : 'INVALID_PARAM';
      return new MinkubeError(code, e.message);
    }
    default:
      break;
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 404) return new MinkubeError('NOT_FOUND');
  if (status === 405) return new MinkubeError('METHOD_NOT_ALLOWED');
  if (status >= 400 && status < 500) return new MinkubeError('INVALID_PARAM', typeof e.message === 'string' ? e.message : undefined);
  return new MinkubeError('INTERNAL', undefined, { cause: err });
}

/**
 * @fastify/static (the dashboard's files, the API explorer's) refuses a path that is not a file's path as it spells
 * it (a backslash, a NUL byte, an empty or dot segment) with an error whose message is only "Forbidden": this says
 * what is wrong with it instead, as 400 INVALID_PARAM (the status and code it always had). `server` names what serves
 * the files ('the dashboard'). Any other error is returned as it is. For a setErrorHandler around the static files,
 * which throws it on to the app's one handler.
 */
export function staticPathError(err: unknown, url: string, server: string): unknown {
  if ((err as { code?: unknown } | null)?.code !== 'FST_STATIC_FORBIDDEN_PATH') return err;
  const raw = url.split('?')[0] ?? url;
  let path = raw;
  try {
    path = decodeURIComponent(raw);
  } catch {
    // shown as it came
  }
  const why = path.includes('\\')
    ? 'it holds a backslash'
    : path.includes('\0')
      ? 'it holds a NUL byte'
      : "a file's path has no empty segment ('//') and no '.' or '..' segment";
  return new MinkubeError('INVALID_PARAM', `the path ${JSON.stringify(excerpt(path, 128))} is not one ${server} serves: ${why}`);
}

export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply, bodyLimitBytes: number): FastifyReply {
  let error = toMinkubeError(err, bodyLimitBytes);
  // A route that takes no body says so of a body of any type (a JSON one gets the same answer from takesNoBody).
  if (error.code === 'UNSUPPORTED_MEDIA_TYPE' && req.routeOptions.config.takesNoBody === true) {
    error = new MinkubeError('INVALID_BODY', noBodyMessage);
  }
  if (error.code === 'INTERNAL') req.log.error({ err }, 'request failed');
  // A node that is starting, catching up or left the cluster says so to every caller: the node's own lines tell
  // the story once; a warn per request would bury it (a fresh cluster's workers knock before the first leader).
  else if (error.code === 'NOT_READY') req.log.debug({ code: error.code, reason: error.message }, 'request failed');
  else if (error.status >= 500) req.log.warn({ code: error.code, reason: error.message }, 'request failed');
  else req.log.debug({ code: error.code, reason: error.message }, 'request rejected');
  // Every 401 carries its challenge (RFC 9110), the routes that check a token in the body (log-in, join) too.
  if (error.status === 401 && !reply.hasHeader('www-authenticate')) void reply.header('www-authenticate', 'Bearer realm="minkube"');
  return reply.header('x-request-id', req.id).code(error.status).type('application/json').send(error.toBody());
}

/**
 * The routes' paths by method, matched as fastify's router matches them but with no bound on a parameter's length:
 * which methods serve a path (405), and which route and parameter a router error is about.
 */
export class RoutePaths {
  private readonly router = Router({ ignoreTrailingSlash: false, maxParamLength: Number.MAX_SAFE_INTEGER });
  private readonly methods = new Set<HTTPMethod>();

  add(method: string, url: string): void {
    if (method === 'HEAD' || method === 'OPTIONS') return;
    try {
      this.router.on(method as HTTPMethod, url, noop, { url });
      this.methods.add(method as HTTPMethod);
    } catch {
      // Registered already (another constraint of the same route): one entry is enough to say it exists.
    }
  }

  /**
   * The methods other than `method` that serve `path`, sorted: HEAD with GET (fastify answers a HEAD of every GET). A
   * GET or HEAD that ends here though a GET route matches (a static file that is not there) is a 404: GET and HEAD
   * are one method for this.
   */
  otherMethods(method: string, path: string): HTTPMethod[] {
    const serving = [...this.methods].filter((m) => this.router.find(m, path) !== null);
    if (serving.includes('GET')) serving.push('HEAD');
    const same = method === 'GET' || method === 'HEAD' ? ['GET', 'HEAD'] : [method];
    return serving.filter((m) => !same.includes(m)).sort();
  }

  /** The route (its url, `/v1/tasks/:id`) and parameters `path` matches for `method`, or for any method; else null. */
  match(method: string, path: string): { url: string; params: Record<string, string | undefined> } | null {
    for (const m of [method === 'HEAD' ? 'GET' : method, ...this.methods]) {
      const found = this.router.find(m as HTTPMethod, path);
      if (found !== null && found.store !== null) return { url: (found.store as { url: string }).url, params: found.params };
    }
    return null;
  }
}

/**
 * Installs the error handler and the 404 handler on an app (before its routes: it watches them being added into
 * `routes`). A path that a route serves with another method is `405 METHOD_NOT_ALLOWED` with an `Allow` header, not 404.
 */
export function installErrorHandling(app: FastifyInstance, bodyLimitBytes: number, routes = new RoutePaths()): void {
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply, bodyLimitBytes));
  // Paths without parameters, with their methods: GET /v1/tasks/batch is matched by GET /v1/tasks/:id, yet it names
  // the path POST /v1/tasks/batch serves, and is answered 405 as any other path served with other methods.
  const staticMethods = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routes.add(method, route.url);
      if (!route.url.includes(':') && !route.url.includes('*')) staticMethods.set(route.url, (staticMethods.get(route.url) ?? new Set()).add(method));
    }
  });
  app.addHook('onRequest', (req, reply, done) => {
    const template = req.routeOptions.url;
    if (template === undefined || !template.includes(':')) return done();
    const path = req.url.split('?')[0] ?? '/';
    const methods = staticMethods.get(path);
    if (methods === undefined || methods.has(req.method)) return done();
    const allowed = [...methods].sort();
    void reply.header('allow', allowed.join(', '));
    done(new MinkubeError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${excerpt(path)}; it takes ${allowed.join(', ')}`));
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '/';
    const allowed = routes.otherMethods(req.method, path);
    if (allowed.length > 0) {
      const route = routes.match(req.method, path)?.url;
      if (route !== undefined) notAllowedRoutes.set(req, route);
      void reply.header('allow', allowed.join(', '));
      return sendError(new MinkubeError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${excerpt(path)}; it takes ${allowed.join(', ')}`), req, reply, bodyLimitBytes);
    }
    return sendError(new MinkubeError('NOT_FOUND', `no route ${req.method} ${excerpt(path)}`), req, reply, bodyLimitBytes);
  });
}

function noop(): void {}

/** The route template of a path answered 405 (the path exists, not for this method): no route matched it for fastify. */
const notAllowedRoutes = new WeakMap<FastifyRequest, string>();

/**
 * The route template a request was answered by (`/v1/kv/*`), the existing route's for a method it does not take
 * (405), or undefined when no route has the path (404).
 */
export function routeTemplateOf(req: FastifyRequest): string | undefined {
  return req.routeOptions.url ?? notAllowedRoutes.get(req);
}

export interface FrameworkErrorOptions {
  bodyLimitBytes: number;
  /** Filled by installErrorHandling. */
  routes: RoutePaths;
  /** The router's bound on a path parameter (its maxParamLength), in characters. */
  paramCharsMax: number;
  /** A refusal that comes before any router error (HTTP/2 headers too large: the path is one of them). */
  refusal?: (req: FastifyRequest) => MinkubeError | null;
}

/** For fastify's `frameworkErrors` option: errors raised before routing (a malformed percent-encoding, an over-long parameter). */
export function frameworkErrorHandler(opts: FrameworkErrorOptions) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    const startedMs = performance.now();
    const error = opts.refusal?.(req) ?? routerError(err, req.method, req.url, opts.routes, opts.paramCharsMax);
    // No route ran, so neither did the onResponse hook that times requests (observeRequests): time it here, under
    // the template of the route the path would take.
    const observe = requestObservers.get(req.server);
    if (observe !== undefined) {
      const route = routerErrorRoute(req.method, req.url, opts.routes) ?? 'unmatched';
      reply.raw.once('finish', () => observe(route, req.method, reply.raw.statusCode, (performance.now() - startedMs) / 1000));
    }
    void sendError(error ?? err, req, reply, opts.bodyLimitBytes);
  };
}

/** What times each answered request (route template, method, status code, seconds), by the app that answers it. */
export type RequestObserver = (route: string, method: string, code: number, seconds: number) => void;

/** Set by observeRequests (routes/metrics.ts), read by the router-error handler, which runs outside any route. */
export const requestObservers = new WeakMap<FastifyInstance, RequestObserver>();

/** The template of the route a refused path would take with its unreadable or over-long segment readable. */
function routerErrorRoute(method: string, url: string, routes: RoutePaths): string | undefined {
  const segments = (url.split('?')[0] ?? '/').split('/');
  return routes.match(method, segments.map((s) => (decodes(s) ? s : 'x')).join('/'))?.url;
}

/**
 * A router error as INVALID_PARAM naming the parameter and the rule (fastify's own messages quote the whole path,
 * however long); null for any other error.
 */
export function routerError(err: Partial<FastifyError>, method: string, url: string, routes: RoutePaths, paramCharsMax: number): MinkubeError | null {
  const path = url.split('?')[0] ?? '/';
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    const route = routes.match(method, path);
    const [name, value] = Object.entries(route?.params ?? {}).find(([, v]) => v !== undefined && v.length > paramCharsMax) ?? [];
    const which = name === undefined ? 'a path parameter' : paramName(name, route?.url ?? '');
    const got = value === undefined ? '' : ` (got ${value.length})`;
    return new MinkubeError('INVALID_PARAM', `${which}: at most ${paramCharsMax} characters${got}`);
  }
  if (err.code === 'FST_ERR_BAD_URL') {
    const segments = path.split('/');
    const i = segments.findIndex((s) => !decodes(s));
    if (i < 0) return new MinkubeError('INVALID_PARAM', `the path is not valid percent-encoding (${percentRule})`);
    // The route it would take with that segment readable names the parameter there.
    const route = routes.match(method, [...segments.slice(0, i), 'x', ...segments.slice(i + 1)].join('/'));
    const part = route?.url.split('/')[i];
    const which = part?.startsWith(':') === true || part === '*' ? paramName(part === '*' ? '*' : part.slice(1), route!.url) : 'the path';
    return new MinkubeError('INVALID_PARAM', `${which}: ${JSON.stringify(excerpt(segments[i] ?? ''))} is not valid percent-encoding (${percentRule})`);
  }
  return null;
}

const percentRule = 'a % starts an escape %XX of UTF-8 bytes; send a % itself as %25';

/**
 * A parameter as messages (and the OpenAPI document) name it: the kv routes' wildcard is the key; any other route's
 * (a dashboard file's, /ui/*) is the rest of the path, no parameter a caller knows of.
 */
function paramName(name: string, routeUrl: string): string {
  if (name !== '*') return `params.${name}`;
  return routeUrl.startsWith('/v1/kv/') ? 'params.key' : 'the path';
}

function decodes(segment: string): boolean {
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
}

/** Input quoted in a message: at most `max` characters of it, and how long it was when longer. */
export function excerpt(text: string, max = 64): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** The code a client error of Node's HTTP server (parser or timeout) answers with. */
function clientErrorCode(code: string | undefined): ErrorCode {
  if (code === 'HPE_HEADER_OVERFLOW') return 'HEADERS_TOO_LARGE';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'REQUEST_TIMEOUT';
  return 'BAD_REQUEST';
}

/**
 * For fastify's `clientErrorHandler`: a request Node's parser refused (bad request line or headers, headers too large)
 * or that did not arrive in time answers { error: { code, message } } like every other failure, then the connection
 * is closed (the parser cannot find the next request in what follows), once the client has stopped sending: a
 * 100 KB URL refused at 16 KiB is still arriving, and a close then would reset the answer away (linger.ts).
 * Bytes that are not a request after whole requests still being answered (keep-alive, pipelining) are answered after
 * them, in order, within `answersWaitMsMax` (the request timeout: every one of them is answered by then); written at
 * once, the 400 took the place of answers to requests that were carried out all the same.
 */
export function clientErrorHandler(linger: LingerBounds, answersWaitMsMax: number) {
  return function onClientError(this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
    // Lingering, or waiting for the answers before: the parser refuses each chunk the client still sends, which is dropped.
    if (err.code === 'ECONNRESET' || socket.destroyed || isLingering(socket) || answeringFirst.has(socket)) return;
    const error = new MinkubeError(clientErrorCode(err.code));
    this.log.debug({ code: error.code, reason: err.code ?? err.message }, 'client error');
    const connection = socket as Connection;
    const inFlight = connection._httpMessage;
    const last = connection.parser?.incoming;
    // A timeout is no parse error: the parser would go on reading requests while the answers before were awaited.
    if (inFlight != null && last?.complete === true && err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      if (last.headers['content-length'] === undefined && last.headers['transfer-encoding'] === undefined) followedByNoRequest.add(last);
      answerAfterInFlight(connection, error, linger, answersWaitMsMax);
      return;
    }
    // A response already under way on this connection (the request it answers not whole) cannot be followed by another.
    if (socket.writable && inFlight?.headersSent !== true) socket.write(rawErrorResponse(error));
    lingerThenClose(socket as Socket, linger);
  };
}

/** What clientErrorHandler reads of node's HTTP/1.1 connection: its response being written, and its parser's last request. */
type Connection = Socket & { _httpMessage?: ServerResponse | null; parser?: { incoming?: IncomingMessage | null } | null };

/** Connections whose answers before a refused request's are being written (clientErrorHandler). */
const answeringFirst = new WeakSet<Duplex>();

/**
 * Node writes a connection's answers in order, each after the one before has finished (its next becomes
 * `_httpMessage`): the error follows once none is left, or the connection is destroyed at the bound.
 */
function answerAfterInFlight(socket: Connection, error: MinkubeError, linger: LingerBounds, waitMsMax: number): void {
  answeringFirst.add(socket);
  const bound = setTimeout(() => socket.destroy(), waitMsMax);
  bound.unref();
  socket.once('close', () => clearTimeout(bound));
  const next = (): void => {
    if (socket.destroyed) return;
    const res = socket._httpMessage;
    // Listened to after node's own 'finish' listener, which hands the connection to the next answer.
    if (res != null) return void res.once('finish', next);
    clearTimeout(bound);
    if (socket.writable) socket.write(rawErrorResponse(error));
    lingerThenClose(socket, linger);
  };
  next();
}

/** Requests followed on their connection by bytes that are not a request, and that came without body framing. */
const followedByNoRequest = new WeakSet<IncomingMessage>();

export const unframedBodyMessage =
  'the bytes after this request on the connection are not a request (a body sent without Content-Length or Transfer-Encoding?): nothing was done; send a body with its Content-Length';

/**
 * A request without Content-Length or Transfer-Encoding has no body, so the bytes after it are read as the next
 * request. When those do not parse, they were most likely its body (node's http.request sends a DELETE's so), and the
 * request, carried out without it, would do other than asked (a DELETE without its ifVersion check). Node reports the
 * parse error while it parses the read that brought the request, before any of the request's hooks that wait: asked
 * after such a wait (http.ts, onRequest), this refuses the request instead.
 */
export function unframedBodyRefusal(req: IncomingMessage): MinkubeError | undefined {
  return followedByNoRequest.has(req) ? new MinkubeError('INVALID_BODY', unframedBodyMessage) : undefined;
}

/** A whole HTTP/1.1 answer carrying the error in our JSON shape, for a connection no server has parsed; it closes it. */
export function rawErrorResponse(error: MinkubeError): string {
  const body = JSON.stringify(error.toBody());
  const reason = httpStatusText[error.status] ?? 'Error';
  return `HTTP/1.1 ${error.status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

const httpStatusText: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
