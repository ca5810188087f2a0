// The base of every Minkube HTTP app: JSON only, request ids, deadlines, TypeBox validation, one error handler.
// Apps add their routes as plugins on top; nothing here listens (tests use app.inject). Every port speaks HTTP/1.1
// and HTTP/2 (h2 by ALPN over TLS; cleartext h2c with prior knowledge, told apart by its first bytes).
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { createServer, METHODS, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2ServerRequest, type Http2Session, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { fastify, LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyRequest } from 'fastify';
import { systemClock } from '../lib/clock.js';
import { FdWatch, fdLimitNote, fdShortageMessage } from '../lib/fds.js';
import { limits } from '../lib/limits.js';
import { MinkubeError } from '../lib/errors.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandling, rawErrorResponse, RoutePaths, unframedBodyRefusal } from './errors.js';
import { schemaController } from './schema-compilers.js';
import { NoQuery } from './schemas.js';
import { clientTimeoutHeader } from '../contracts/services.js';
import { takesNoBody, typeboxValidatorCompiler } from './validation.js';
import { withLinger, type OneWriteResponse } from './h2-response.js';
import { lingerAfterLastAnswers, lingerThenClose, type LingerBounds } from './linger.js';
import { ConnectionSlots } from './connections.js';
import { boundHttp2Receive, type RequestEmitter } from './receive-timeout.js';
import { carriesLongAnswer } from './text-stream.js';
import { UnreadAnswers } from './unread-answers.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * On the monotonic reading (BaseAppOptions.monoMs, performance.now() by default, as Clock.monoMs): when the
     * request arrived plus the app's request timeout. A step of the wall clock neither cuts nor stretches it.
     */
    deadlineMs: number;
  }
}

export interface BaseAppOptions {
  /** A pino logger, or false (the default) for none. */
  logger?: FastifyBaseLogger | false;
  bodyLimitBytes?: number;
  requestTimeoutMs?: number;
  /** The monotonic reading deadlines are taken on: the Clock.monoMs of the services the routes call into. */
  monoMs?: () => number;
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
  /** Past these a new connection takes the place of an idle one, or is refused (connections.ts). */
  connectionsMax: number;
  connectionsPerAddressMax: number;
  evictableIdleMsMin: number;
  /** After an early answer, what the client still sends is dropped before the close, up to these (linger.ts). */
  lingerBytesMax: number;
  lingerMs: number;
  /** HTTP/1.1 pipelining (takeTurn below): answer bytes left unread before the next request waits, and for how long. */
  unreadBytesMax: number;
  unreadWaitMs: number;
  /** Every connection's unread answers together (unread-answers.ts). */
  unreadAnswersBytesMax: number;
  unreadAnswerAgeMsMin: number;
  /** One HTTP/2 connection's answers not yet sent, past which it is closed (unread-answers.ts). */
  http2UnsentBytesMax: number;
}

const defaultServerLimits: ServerLimits = {
  headersTimeoutMs: limits.httpHeadersTimeoutMs,
  receiveTimeoutMs: limits.httpRequestTimeoutMs,
  timeoutCheckIntervalMs: limits.httpTimeoutCheckIntervalMs,
  keepAliveTimeoutMs: limits.httpKeepAliveTimeoutMs,
  headerBytesMax: limits.httpHeaderBytesMax,
  headersCountMax: limits.httpHeadersCountMax,
  connectionsMax: limits.httpConnectionsMax,
  connectionsPerAddressMax: limits.httpConnectionsPerAddressMax,
  evictableIdleMsMin: limits.httpEvictableIdleMsMin,
  lingerBytesMax: limits.httpLingerBytesMax,
  lingerMs: limits.httpLingerMs,
  unreadBytesMax: limits.http1UnreadBytesMax,
  unreadWaitMs: limits.http1UnreadWaitMsMax,
  unreadAnswersBytesMax: limits.httpUnreadAnswersBytesMax,
  unreadAnswerAgeMsMin: limits.httpUnreadAnswerAgeMsMin,
  http2UnsentBytesMax: limits.http2SessionUnsentBytesMax,
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

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route reads its query itself: no `querystring` schema is added (see the onRoute hook). */
    anyQuery?: boolean;
    /** Set by the onRoute hook on a route that takes no body. */
    takesNoBody?: boolean;
  }
}

/** The routes that take any query: probes and scrapers add their own, and static files their cache busters. */
function takesAnyQuery(url: string): boolean {
  return url === '/health' || url === '/ready' || url === '/metrics' || url === '/openapi.json' || url === '/docs' || url.startsWith('/docs/') || url === '/ui' || url.startsWith('/ui/');
}

export function buildBaseApp(opts: BaseAppOptions): FastifyInstance {
  const bodyLimitBytes = opts.bodyLimitBytes ?? limits.httpBodyBytesDefault;
  const requestTimeoutMs = opts.requestTimeoutMs ?? limits.requestTimeoutMsDefault;
  const monoMs = opts.monoMs ?? (() => performance.now());
  const server: ServerLimits = { ...defaultServerLimits, ...opts.server };
  // Percent-encoded keys are up to three times their byte length.
  const paramCharsMax = limits.kvKeyBytesMax * 3;
  const routes = new RoutePaths();
  const linger: LingerBounds = { bytesMax: server.lingerBytesMax, ms: server.lingerMs };
  // The process's descriptors as this port's connections see them (src/lib/fds.ts): when it is out of them, the port
  // gives back its idle connections (slots, made next, by the time the watch starts).
  const fds = new FdWatch({ clock: systemClock, warn: (shortage) => (opts.logger ? opts.logger.warn(shortage, fdShortageMessage(shortage)) : undefined), shed: () => slots.shed() });
  const slots = new ConnectionSlots(server, fds);
  const unread = new UnreadAnswers({ answersBytesMax: server.unreadAnswersBytesMax, ageMsMin: server.unreadAnswerAgeMsMin, sessionBytesMax: server.http2UnsentBytesMax });
  const common = {
    bodyLimit: bodyLimitBytes,
    genReqId,
    // Serializers compiled with a route's first answer, and no Ajv: start-up stays cheap (schema-compilers.ts).
    schemaController,
    // One line per request at info would drown the Raft logs: requests are logged at debug (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: paramCharsMax },
    // The router's errors come before any hook: an HTTP/2 path too large is refused here as in onRequest below.
    frameworkErrors: frameworkErrorHandler({ bodyLimitBytes, routes, paramCharsMax, refusal: (req) => headersRefusal(req.raw, server) }),
    // Errors of Node's HTTP parser and its timeouts, before fastify sees a request: answered in our JSON shape.
    clientErrorHandler: clientErrorHandler(linger, requestTimeoutMs),
    keepAliveTimeout: server.keepAliveTimeoutMs,
    requestTimeout: server.receiveTimeoutMs,
    http: nodeServerOptions(server),
  };
  // Over TLS, an HTTP/2 server that takes HTTP/1.1 too (ALPN decides); in cleartext, an HTTP/1.1 server that hands
  // connections opening with HTTP/2's preface to an h2c server. Either way one port, the same routes and answers.
  // HTTP/2 lets a client keep many requests in flight on one connection (etcd's gRPC clients do): fewer connections
  // and far fewer writes per request under load (bench/kv-go.ts, -h2).
  // maxHeaderListPairs: node resets a stream past 128 header fields (ENHANCE_YOUR_CALM) before our 431 over 100 could
  // answer it; the header list's size still bounds it (http2Settings).
  const h2 = { settings: http2Settings(server), maxSessionMemory: limits.http2SessionMemoryMiBMax, maxHeaderListPairs: limits.http2HeaderPairsMax, http2SessionTimeout: server.keepAliveTimeoutMs, Http2ServerResponse: withLinger(linger) };
  const serverOptions: Record<string, unknown> =
    opts.https === undefined
      ? { ...common, forceCloseConnections: 'idle' as const, serverFactory: h1AndH2cServer(server, h2, linger, slots) }
      : {
        ...common,
        http2: true as const,
        // Ours instead (closeIdleSession, below): fastify's would close a session a followed log keeps quiet.
        http2SessionTimeout: 0,
        forceCloseConnections: true,
        // noDelay: a TLS server's sockets keep Nagle's algorithm on (node's HTTP server turns it off, its TLS server does
        // not): an HTTP/1.1 answer in two writes then waited for the client's delayed ACK, 40 ms, on about one new
        // connection in four.
        // handshakeTimeout: a client that stalls in its TLS handshake is cut off with the header timeout, not node's 120 s.
        https: { ...opts.https, ...nodeServerOptions(server), handshakeTimeout: server.headersTimeoutMs, noDelay: true, allowHTTP1: true, settings: h2.settings, maxSessionMemory: h2.maxSessionMemory, maxHeaderListPairs: h2.maxHeaderListPairs, Http2ServerResponse: h2.Http2ServerResponse },
      };
  // fastify types an HTTPS or HTTP/2 app as another instance type; every route and hook here is the same for all.
  const options = (opts.logger ? { ...serverOptions, loggerInstance: opts.logger } : { ...serverOptions, logger: false }) as FastifyHttpOptions<Server>;
  const app = fastify(options) as unknown as FastifyInstance;
  // Watched while the port is open: its timer and spare descriptor go with it.
  app.server.once('listening', () => {
    fds.start();
    const note = fdLimitNote(fds.fdLimit, server.connectionsMax);
    if (note !== null && opts.logger) opts.logger.warn({ fdLimit: fds.fdLimit, connectionsMax: server.connectionsMax }, note);
  });
  app.server.once('close', () => fds.stop());
  if (opts.https !== undefined) {
    boundHttp1OverTls(app.server, server);
    refuseUnknownMethods(app.server as unknown as RequestListeners);
    boundHttp2Receive(app.server as unknown as RequestEmitter, server);
    answerPlainHttp(app.server, server, linger, slots);
    slots.watch(app.server);
    app.server.on('session', (session: Http2Session) => closeWhenIdle(session, h2.http2SessionTimeout));
    answerExpectContinueLater(app.server);
    lingerAfterLastAnswers(app.server, linger);
  }
  // JSON only: any other content type is 415, rather than a text body failing validation with a 400.
  app.removeContentTypeParser('text/plain');
  // JSON read as bytes: a body that is not UTF-8, or that escapes a lone surrogate, would have its strings kept with
  // U+FFFD in place of what was sent (a value stored other than as written). Both are refused instead.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    // No body at all is no body, whatever the header says (clients that send the header on every request): a route
    // that needs one still says so (body: expected object), one that takes none does not refuse it.
    if (body.length === 0) return done(null, undefined);
    // A route that takes no body judges a body of any type by what it holds (none, {} or null), charset or not.
    const charsets = req.routeOptions.config.takesNoBody === true ? [] : charsetsOf(req.headers['content-type']);
    const other = charsets.length > 1 ? `names ${charsets.length} charsets` : charsets.length === 1 && !/^utf-?8$/i.test(charsets[0]!) ? `names the charset ${JSON.stringify(charsets[0])}` : null;
    if (other !== null) {
      return done(new MinkubeError('UNSUPPORTED_MEDIA_TYPE', `the Content-Type ${other}; send JSON as UTF-8 (application/json, or with charset=utf-8)`), undefined);
    }
    if (!isUtf8(body)) return done(new MinkubeError('INVALID_JSON', 'the body is not UTF-8 text'), undefined);
    const text = body.toString('utf8');
    void parseJson(req, text, (err: Error | null, value: unknown) => {
      if (err === null && surrogateEscape.test(text) && hasLoneSurrogate(value)) {
        return done(new MinkubeError('INVALID_JSON', 'the body escapes a lone surrogate (\\ud800-\\udfff without its pair), which is not text'), undefined);
      }
      // Valid JSON that the parser refuses all the same: say why rather than "not valid JSON".
      if (err !== null && prototypeKey.test(text) && isJson(text)) {
        return done(new MinkubeError('INVALID_JSON', 'the body has a "__proto__" or "constructor": { "prototype" } key, which is refused (it could change the objects it is read into)'), undefined);
      }
      done(err, value);
    });
  });
  // Any other type, and a body without one: fastify would refuse a chunked body sent with no type (415, or 400 where
  // no body is taken) though it held no bytes (node's client sends `0\r\n\r\n` for req.write('')), where
  // `Content-Length: 0` is no body. A body of no bytes is no body whatever its framing; any other is 415 as before.
  app.addContentTypeParser('*', (req, payload, done) => {
    // No route: the 404 handler answers, as it did without a parser for the type.
    if (req.is404) return done(null, undefined);
    const type = req.headers['content-type'];
    if (type !== undefined || contentLength(req.raw) > 0) return done(unsupportedType(type), undefined);
    const settle = (err: Error | null): void => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', settle);
      done(err, undefined);
    };
    const onData = (): void => settle(unsupportedType(undefined));
    const onEnd = (): void => settle(null);
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', settle);
  });
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { body?: unknown; querystring?: unknown } | undefined;
    // A query parameter a route does not take is refused (400 INVALID_PARAM, query.NAME: unknown field) rather than
    // ignored: `PUT /v1/kv/k?ifVersion=3` would otherwise write without its check. Probes, scrapers, the explorer's
    // and the dashboard's files, and a route that reads its query itself (config.anyQuery) take whatever comes.
    const anyQuery = route.config?.anyQuery === true || takesAnyQuery(route.url);
    if (schema?.querystring === undefined && !anyQuery) route.schema = { ...schema, querystring: NoQuery };
    // A DELETE takes its arguments in the path and query: a body (`{ "ifVersion": 1 }` say) would be ignored, so it is
    // refused rather than a compare-and-set silently not made.
    const own = route.preValidation;
    const hooks = own === undefined ? [] : Array.isArray(own) ? own : [own];
    if (route.method === 'DELETE' && schema?.body === undefined && !hooks.includes(takesNoBody)) hooks.unshift(takesNoBody);
    if (hooks.length > 0) route.preValidation = hooks;
    // A route that takes no body answers a body of another type as any other body: 400 INVALID_BODY, not 415.
    if (hooks.includes(takesNoBody)) route.config = { ...route.config, takesNoBody: true };
  });
  app.decorateRequest('deadlineMs', 0);
  // Callback hooks, not async ones: every request passes them, and a promise each is measurable on a busy leader.
  app.addHook('onRequest', (req, reply, done) => {
    const refusal = headersRefusal(req.raw, server) ?? queryEncodingRefusal(req);
    if (refusal !== null) {
      // A request whose framing headers cannot be trusted (Host missing or repeated, a header given twice): nothing
      // after it on the connection is read, as for one Node's parser refused.
      if (refusal.code === 'BAD_REQUEST' && req.raw.httpVersionMajor === 1) {
        void reply.header('connection', 'close');
        closingSockets.add(req.raw.socket);
      }
      return done(refusal);
    }
    const clientTimeout = req.raw.headers[clientTimeoutHeader];
    const askedMs = clientTimeout === undefined ? null : clientTimeoutMsOf(clientTimeout);
    if (askedMs === undefined) return done(new MinkubeError('INVALID_PARAM', `header ${clientTimeoutHeader}: expected a whole number of milliseconds from ${clientTimeoutMsMin} to ${clientTimeoutMsMax}`));
    req.deadlineMs = monoMs() + (askedMs === null ? requestTimeoutMs : Math.min(requestTimeoutMs, askedMs));
    void reply.header(requestIdHeader, req.id);
    if (req.raw.httpVersionMajor === 2) {
      // HTTP/2 frames every body, but fastify judges by the headers: one sent with no Content-Type or Content-Length
      // would be ignored (a DELETE made without its ifVersion check). Such a stream's body is looked at here instead.
      if (mayHaveUnframedBody(req.raw) && req.headers['content-type'] === undefined && !(req.raw as unknown as Http2ServerRequest).stream.endAfterHeaders) return judgeUntypedBody(req.raw, done);
      return done();
    }
    // Bytes after a request without body framing that do not parse (its body, sent without a length?) are reported
    // while node parses the read that brought it: such a request goes on once that is done (a microtask), and is
    // refused if they came (errors.ts, unframedBodyRefusal), not carried out without its body.
    takeTurn(req.raw.socket, server, mayHaveUnframedBody(req.raw) ? () => queueMicrotask(() => done(unframedBodyRefusal(req.raw))) : done);
  });
  // Expect: 100-continue is answered here, after every check before the body (answerExpectContinueLater): a body
  // declared over the route's limit gets its 413 before the client sends it.
  app.addHook('preParsing', (req, reply, payload, done) => {
    const raw = req.raw;
    if (expectsContinue(raw) && !(contentLength(raw) > req.routeOptions.bodyLimit)) reply.raw.writeContinue();
    done(null, payload);
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    if (req.raw.httpVersionMajor === 2) {
      // A body refused by fastify's parser gets `connection: close`, which HTTP/2 has no use for (node warns).
      if (reply.hasHeader('connection')) void reply.removeHeader('connection');
    } else if (req.raw.complete === false && (req.raw.headers['transfer-encoding'] !== undefined || contentLength(req.raw) > 0)) {
      // An answer before the body's end: the connection closes after it (lingering: linger.ts) rather than read the
      // rest of a body nobody wants to keep it.
      void reply.header('connection', 'close');
    }
    unread.written(reply, payload);
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    if (req.raw.httpVersionMajor !== 2) turnDone(req.raw.socket);
    // The line's object is built only when it would be written (req.log is pino's, or fastify's silent one).
    if (req.log.level === 'debug' || req.log.level === 'trace') req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    done();
  });
  installErrorHandling(app, bodyLimitBytes, routes);
  return app;
}

/**
 * HTTP/1.1 pipelining, one request at a time. Node reads every request a client pipelines, and fastify would run them
 * all at once and keep their answers until the client read the ones before: a client that sent requests and never
 * read made a manager hold gigabytes (200 connections of 20 requests for a 0.8 MB task page each). Here a
 * connection's requests take turns: the next starts when the one before has been answered and the socket holds at
 * most unreadBytesMax (limits.http1UnreadBytesMax) not yet taken by the client; a connection whose requests wait
 * behind one answer for unreadWaitMs is cut off, and one with more than limits.http1PipelinedMax waiting too.
 */
interface Turns {
  busy: boolean;
  readonly waiting: (() => void)[];
  draining: NodeJS.Timeout | null;
  /** While requests wait behind a turn: checks every unreadWaitMs that the client takes its answers. */
  stall: NodeJS.Timeout | null;
  /** Turns started so far. */
  started: number;
  readonly bounds: Pick<ServerLimits, 'unreadBytesMax' | 'unreadWaitMs'>;
}

const turns = new WeakMap<Socket, Turns>();

/** HTTP/1.1 connections closed after a BAD_REQUEST answer: a request pipelined behind it is never carried out. */
const closingSockets = new WeakSet<Socket>();

function takeTurn(socket: Socket, bounds: Turns['bounds'], go: () => void): void {
  // Its connection closes once the refusal before it is written: nothing behind that refusal is read, or answered.
  if (closingSockets.has(socket)) return;
  let t = turns.get(socket);
  if (t === undefined) {
    const fresh: Turns = { busy: false, waiting: [], draining: null, stall: null, started: 0, bounds };
    turns.set(socket, (t = fresh));
    // The requests of a closed connection are never answered: nothing keeps them.
    socket.once('close', () => {
      fresh.waiting.length = 0;
      if (fresh.draining !== null) clearTimeout(fresh.draining);
      if (fresh.stall !== null) clearTimeout(fresh.stall);
    });
  }
  if (t.waiting.length >= limits.http1PipelinedMax) {
    socket.destroy();
    return;
  }
  t.waiting.push(go);
  nextTurn(socket, t);
  if (t.waiting.length > 0 && t.stall === null) watchStall(socket, t);
}

/**
 * An answer is done (onResponse) once the socket has handed its last byte on: behind a client that does not read, the
 * turn never ends. Requests waiting behind it look every unreadWaitMs: a turn that was under way at the last look and
 * still is (no answer finished in a whole period while others wait) closes the connection. What the socket says it
 * holds is not asked: over TLS the answer's bytes wait below it, and it said 0 while a client read nothing for a minute.
 */
function watchStall(socket: Socket, t: Turns): void {
  const started = t.started;
  t.stall = setTimeout(() => {
    t.stall = null;
    if (t.waiting.length === 0) return;
    if (t.busy && t.started === started) socket.destroy();
    else watchStall(socket, t);
  }, t.bounds.unreadWaitMs);
  t.stall.unref();
}

function turnDone(socket: Socket): void {
  const t = turns.get(socket);
  if (t === undefined) return;
  t.busy = false;
  nextTurn(socket, t);
}

function nextTurn(socket: Socket, t: Turns): void {
  if (t.busy || t.waiting.length === 0 || t.draining !== null) return;
  if (socket.writableLength > t.bounds.unreadBytesMax) {
    const cutOff = setTimeout(() => socket.destroy(), t.bounds.unreadWaitMs);
    cutOff.unref();
    t.draining = cutOff;
    socket.once('drain', () => {
      clearTimeout(cutOff);
      t.draining = null;
      nextTurn(socket, t);
    });
    return;
  }
  t.busy = true;
  t.started++;
  t.waiting.shift()!();
}

/**
 * An HTTP/2 body with no type and no length: none at all (DATA frames with no bytes, then the stream's end) goes on as
 * no body, as `Content-Length: 0` does; its first byte is refused as any body without a type is (415, or 400
 * INVALID_BODY where no body is taken). Nothing is kept; a stream reset before either never goes on.
 */
function judgeUntypedBody(raw: IncomingMessage, done: (err?: Error) => void): void {
  const settle = (err?: Error): void => {
    raw.removeListener('data', onData);
    raw.removeListener('end', onEnd);
    raw.removeListener('error', settle);
    done(err);
  };
  const onData = (): void => settle(unsupportedType(undefined));
  const onEnd = (): void => settle();
  raw.on('data', onData);
  raw.on('end', onEnd);
  raw.on('error', settle);
}

/** A request of a method that may carry a body (a DELETE's is refused), sent with no Content-Length or Transfer-Encoding. */
function mayHaveUnframedBody(raw: IncomingMessage): boolean {
  const m = raw.method;
  return (m === 'DELETE' || m === 'POST' || m === 'PUT' || m === 'PATCH') && raw.headers['content-length'] === undefined && raw.headers['transfer-encoding'] === undefined;
}

function expectsContinue(raw: IncomingMessage): boolean {
  // As node reads it (HTTP/1.0 has no 100 Continue).
  return (raw.httpVersion === '1.1' || raw.httpVersionMajor === 2) && /(?:^|\W)100-continue(?:$|\W)/i.test(raw.headers.expect ?? '');
}

/** The request's Content-Length; 0 without one (or a chunked body, whose length is not known before its end). */
function contentLength(raw: IncomingMessage): number {
  const length = Number(raw.headers['content-length'] ?? '0');
  return Number.isFinite(length) ? length : 0;
}

/**
 * HEADERS_TOO_LARGE for too many headers, or, over HTTP/2, too many bytes of them (the pseudo-headers, :path with
 * them, count as HTTP/1.1's request line does); else null.
 */
export const clientTimeoutMsMin = 100;
export const clientTimeoutMsMax = 3_600_000;

/** The client's X-Minkube-Timeout-Ms in ms; undefined when it is no such number (a 400). */
function clientTimeoutMsOf(value: string | string[]): number | undefined {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,6}$/.test(value)) return undefined;
  const ms = Number(value);
  return ms >= clientTimeoutMsMin && ms <= clientTimeoutMsMax ? ms : undefined;
}

/** A Content-Type's charset parameters ('latin1' of 'application/json; charset="latin1"'): none, one, or too many. */
function charsetsOf(contentType: string | undefined): string[] {
  if (contentType === undefined || !contentType.includes(';')) return [];
  return [...contentType.matchAll(/;\s*charset\s*=\s*"?([^";\s]*)/gi)].map((m) => m[1]!);
}

/**
 * A query whose parameter is not percent-encoded UTF-8 (`?name=%FF`, `?name=100%`) is refused, not matched as the
 * literal text the parser leaves it as. Only routes that check their query: probes and files take whatever comes.
 */
function queryEncodingRefusal(req: FastifyRequest): MinkubeError | null {
  const url = req.raw.url ?? '';
  const start = url.indexOf('?');
  if (start === -1 || url.indexOf('%', start) === -1) return null;
  const route = req.routeOptions;
  if (route.url === undefined || route.config.anyQuery === true || takesAnyQuery(route.url) || route.url === '/status') return null;
  for (const part of url.slice(start + 1).split('&')) {
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    const nameText = decodedOrNull(name);
    if (nameText === null) return new MinkubeError('INVALID_PARAM', `query: the parameter name ${JSON.stringify(name)} is not percent-encoded UTF-8`);
    if (eq !== -1 && decodedOrNull(part.slice(eq + 1)) === null) return new MinkubeError('INVALID_PARAM', `query.${nameText}: not percent-encoded UTF-8`);
  }
  return null;
}

function decodedOrNull(component: string): string | null {
  if (!component.includes('%')) return component;
  try {
    return decodeURIComponent(component.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

function headersRefusal(raw: IncomingMessage, server: ServerLimits): MinkubeError | null {
  // Node bounds the header bytes, not their number; many tiny headers cost as much to log and to forward. HTTP/2's
  // pseudo-headers (:method, :path, ...) are its request line, not headers: they count in bytes only, as HTTP/1.1's.
  let pseudo = 0;
  if (raw.httpVersionMajor === 2) for (let i = 0; i < raw.rawHeaders.length; i += 2) if (raw.rawHeaders[i]!.startsWith(':')) pseudo++;
  const headers = raw.rawHeaders.length / 2 - pseudo;
  if (headers > server.headersCountMax) return new MinkubeError('HEADERS_TOO_LARGE', `${headers} headers; at most ${server.headersCountMax}`);
  const once = onceHeadersRefusal(raw);
  if (once !== null) return once;
  // HTTP/1.1's parser bounds the header bytes (maxHeaderSize); HTTP/2's announced bound is far above (http2Settings).
  if (raw.httpVersionMajor === 2) {
    let bytes = 0;
    for (const part of raw.rawHeaders) bytes += part.length;
    if (bytes > server.headerBytesMax) return new MinkubeError('HEADERS_TOO_LARGE', `${bytes} bytes of headers; at most ${server.headerBytesMax}`);
  }
  return null;
}

function unsupportedType(type: string | undefined): MinkubeError {
  return new MinkubeError('UNSUPPORTED_MEDIA_TYPE', type === undefined ? 'the body has no Content-Type; send it as application/json' : 'the content type is not supported; send application/json');
}

/**
 * Host, Authorization, Content-Type and Content-Length are refused when given twice (node keeps the first and drops
 * the other: two tokens answered with the first's rights, two types with the first's parser), and an HTTP/1.1
 * request without Host (RFC 9112 3.2 says both MUST be 400) in the JSON shape, on both kinds of port alike: node's
 * HTTP/1.1 server refused a missing Host with an empty 400, its TLS one served it. One pass over the names, most
 * passed over on their length alone.
 */
function onceHeadersRefusal(raw: IncomingMessage): MinkubeError | null {
  const names = raw.rawHeaders;
  let seen = 0;
  for (let i = 0; i < names.length; i += 2) {
    const bit = onceHeaderBit(names[i]!);
    if (bit === 0) continue;
    if ((seen & bit) !== 0) return new MinkubeError('BAD_REQUEST', `the header ${onceHeaderNames[bit]} is given more than once; send it once`);
    seen |= bit;
  }
  if ((seen & hostBit) === 0 && raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1) return new MinkubeError('BAD_REQUEST', 'an HTTP/1.1 request needs a Host header');
  return null;
}

const hostBit = 1;
const onceHeaderNames: Readonly<Record<number, string>> = { 1: 'Host', 2: 'Content-Type', 4: 'Authorization', 8: 'Content-Length' };

function onceHeaderBit(name: string): number {
  switch (name.length) {
    case 4:
      return name.toLowerCase() === 'host' ? hostBit : 0;
    case 12:
      return name.toLowerCase() === 'content-type' ? 2 : 0;
    case 13:
      return name.toLowerCase() === 'authorization' ? 4 : 0;
    case 14:
      return name.toLowerCase() === 'content-length' ? 8 : 0;
    default:
      return 0;
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A key fastify's JSON parser refuses (prototype poisoning), as it may be written in a body. */
const prototypeKey = /"(__proto__|constructor)"\s*:/;
/** A JSON escape of a UTF-16 surrogate: only a body holding one can decode to a string with a lone surrogate. */
const surrogateEscape = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;
const loneSurrogate = /\p{Cs}/u;

/** Whether any string in a parsed JSON value (keys included) holds a surrogate without its pair. */
function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return loneSurrogate.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) if (loneSurrogate.test(k) || hasLoneSurrogate(v)) return true;
  }
  return false;
}

/** Node's own bounds: how long the header block and the whole request may take, and how large the headers may be. */
function nodeServerOptions(server: ServerLimits): ServerOptions {
  return {
    headersTimeout: server.headersTimeoutMs,
    requestTimeout: server.receiveTimeoutMs,
    connectionsCheckingInterval: server.timeoutCheckIntervalMs,
    maxHeaderSize: server.headerBytesMax,
    // An HTTP/1.1 request without Host is refused in our JSON shape (onceHeadersRefusal), not with node's empty 400.
    requireHostHeader: false,
  };
}

/**
 * The bounds of node's HTTP/1.1 server on the HTTP/1.1 connections of the TLS server (an HTTP/2 server that takes
 * HTTP/1.1 too). Node serves those with its HTTP/1.1 server code, which reads its bounds from the server object; but
 * node 20's HTTP/2 server takes none of them from its options: it fixes 60 s for the headers and 300 s for the whole
 * request, looks for connections past them every 30 s, and has no keep-alive timeout. An idle TLS connection was
 * answered 408 after 60 to 90 s, a trickled body never, and an idle keep-alive connection was never closed: 1024 of
 * them held every connection slot. Set on the server before it listens (the look's interval is read then), they hold
 * as on the cleartext port.
 */
function boundHttp1OverTls(tlsServer: Server, s: ServerLimits): void {
  Object.assign(tlsServer, {
    headersTimeout: s.headersTimeoutMs,
    requestTimeout: s.receiveTimeoutMs,
    connectionsCheckingInterval: s.timeoutCheckIntervalMs,
    keepAliveTimeout: s.keepAliveTimeoutMs,
    maxHeaderSize: s.headerBytesMax,
  });
  // A failed handshake (one past the timeout, a client that refuses our certificate) has no HTTP to answer in: it is
  // closed at once. Node's HTTP/2 server hands it to 'clientError', whose handler wrote an HTTP/1.1 answer into a
  // connection without a TLS session and lingered 3 s (linger.ts) before the close.
  tlsServer.removeAllListeners('tlsClientError');
  tlsServer.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
}

function http2Settings(server: ServerLimits): { maxConcurrentStreams: number; maxHeaderListSize: number } {
  // Not headerBytesMax itself: node enforces the setting once acknowledged by resetting the stream, no answer given.
  return { maxConcurrentStreams: limits.http2StreamsPerConnectionMax, maxHeaderListSize: Math.max(limits.http2HeaderListBytesMax, server.headerBytesMax) };
}

/** The first byte of every TLS connection: a handshake record (a client hello). */
const tlsHandshakeRecord = 0x16;

/**
 * A secure port's TLS server, with a look at each connection's first bytes: a TLS record goes on to the TLS server
 * (it reads the bytes put back), anything else (curl http://..., a client with the wrong scheme) is answered
 * `400 HTTPS_REQUIRED` in plain HTTP, as Go's servers do, and closed; clients would otherwise show an empty reply.
 * A connection that sends nothing is closed after the header timeout.
 */
function answerPlainHttp(tlsServer: Server, limitsOf: ServerLimits, linger: LingerBounds, slots: ConnectionSlots): void {
  const tlsListeners = tlsServer.listeners('connection') as ((socket: Socket) => void)[];
  tlsServer.removeAllListeners('connection');
  const silent = silentUntilClose(tlsServer);
  tlsServer.on('connection', (socket: Socket) => {
    if (!slots.admit(socket)) return;
    firstBytes(socket, limitsOf.headersTimeoutMs, silent, (chunk) => {
      if (chunk[0] === tlsHandshakeRecord) {
        for (const listener of tlsListeners) listener.call(tlsServer, socket);
        return;
      }
      if (startsH2Preface(chunk)) {
        answerH2cOnce(socket, limitsOf.headersTimeoutMs, (target) => httpsRequired(target));
        return;
      }
      socket.write(rawErrorResponse(httpsRequired(plainRequestTarget(chunk))));
      // Read to the client's end, the bytes dropped: closed with a request body unread, the answer could be reset away.
      lingerThenClose(socket, linger);
    });
  });
}

function httpsRequired(target: string | null): MinkubeError {
  return new MinkubeError('HTTPS_REQUIRED', `this port speaks HTTPS only (the cluster is secure)${target === null ? '' : `: use https://${target}`}`);
}

/** Whether a connection's first bytes are (the start of) HTTP/2's preface: a client speaking h2c by prior knowledge. */
function startsH2Preface(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, h2Preface.length);
  return n >= 3 && chunk.subarray(0, n).equals(h2Preface.subarray(0, n));
}

/**
 * Answers an h2c client on a TLS port in its own protocol, as the HTTP/1.1 path answers in plain HTTP/1.1: its first
 * stream gets the error (400, JSON), then the session ends (GOAWAY). A session that opens no stream within
 * `timeoutMs` is closed. One small HTTP/2 server per such connection: it is the rare, wrong-scheme case.
 */
function answerH2cOnce(socket: Socket, timeoutMs: number, errorFor: (target: string | null) => MinkubeError): void {
  const server = createH2cServer({ settings: { maxConcurrentStreams: 1 } });
  server.on('session', (session: ServerHttp2Session) => {
    session.setTimeout(timeoutMs, () => session.destroy());
    session.on('error', () => session.destroy());
    session.once('close', () => server.close());
  });
  server.on('stream', (stream, headers) => {
    const path = headers[':path'];
    const authority = headers[':authority'];
    const plain = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max && /^[\x21-\x7e]+$/.test(v);
    const target = plain(authority, 255) && plain(path, 200) && path.startsWith('/') ? `${authority}${path}` : null;
    const error = errorFor(target);
    stream.on('error', () => undefined);
    stream.respond({ ':status': error.status, 'content-type': 'application/json' });
    stream.end(JSON.stringify(error.toBody()), () => stream.session?.close());
  });
  // The session reads what firstBytes put back itself (as the h2c port's does).
  server.emit('connection', socket);
}

/** `host/path` of a plain HTTP request's first bytes, when both are plain enough to repeat; else null. */
function plainRequestTarget(chunk: Buffer): string | null {
  const head = chunk.subarray(0, 2048).toString('latin1');
  const path = /^[A-Z]{3,7} (\/[\x21-\x7e]{0,200}) HTTP\/1\.[01]\r\n/.exec(head)?.[1];
  const host = /\r\nhost: *([A-Za-z0-9.:[\]-]{1,255})\r\n/i.exec(head)?.[1];
  return path === undefined || host === undefined ? null : `${host}${path}`;
}

/**
 * The connections of `server` that have not sent their first bytes yet (firstBytes keeps the set). Node's parser has
 * not seen them, so its own idle close misses them, and a close would wait out the header timeout for each (an undici
 * pool opens one after a streaming request it was reading is aborted): closing the server destroys them first.
 */
function silentUntilClose(server: Server): Set<Socket> {
  const silent = new Set<Socket>();
  const close = server.close.bind(server);
  server.close = ((callback?: (err?: Error) => void) => {
    for (const socket of silent) socket.destroy();
    return close(callback);
  }) as Server['close'];
  const closeIdle = server.closeIdleConnections?.bind(server);
  if (closeIdle !== undefined) {
    server.closeIdleConnections = () => {
      for (const socket of silent) socket.destroy();
      closeIdle();
    };
  }
  return silent;
}

/**
 * Hands a new connection's first chunk to `then`, put back on the paused socket so that whoever takes the socket
 * next reads it first. Until then the socket is in `silent`, and closed on error, or when nothing comes within
 * timeoutMs.
 */
function firstBytes(socket: Socket, timeoutMs: number, silent: Set<Socket>, then: (chunk: Buffer) => void): void {
  const fail = (): void => void socket.destroy();
  silent.add(socket);
  socket.once('close', () => silent.delete(socket));
  socket.setTimeout(timeoutMs, fail);
  socket.on('error', fail);
  socket.once('data', (chunk: Buffer) => {
    silent.delete(socket);
    socket.pause();
    socket.unshift(chunk);
    socket.setTimeout(0);
    socket.removeListener('timeout', fail);
    socket.removeListener('error', fail);
    then(chunk);
  });
}

/** What refuseUnknownMethods needs of a server: its 'request' listeners. */
interface RequestListeners {
  listeners(event: 'request'): ((req: IncomingMessage, res: ServerResponse) => void)[];
  removeAllListeners(event: 'request'): unknown;
  on(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
}

const knownMethods: ReadonlySet<string> = new Set(METHODS);

/**
 * An HTTP/2 request may carry any method (HTTP/1.1's parser refuses the unknown ones with a 400): one fastify's
 * router does not know is answered 400 BAD_REQUEST here, as HTTP/1.1 answers it, before fastify, whose fallback for
 * it logs two warnings (one the whole route tree) for anyone who asks.
 */
function refuseUnknownMethods(server: RequestListeners): void {
  const listeners = server.listeners('request');
  server.removeAllListeners('request');
  server.on('request', (req, res) => {
    if (knownMethods.has(req.method ?? '')) {
      for (const listener of listeners) listener.call(server, req, res);
      return;
    }
    const body = JSON.stringify(new MinkubeError('BAD_REQUEST', `unknown method ${JSON.stringify((req.method ?? '').slice(0, 32))}`).toBody());
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(body);
  });
}

/** HTTP/2's connection preface: no HTTP/1.1 request starts with it (there is no method PRI). */
const h2Preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * An HTTP/2 session idle for idleMs is closed (GOAWAY), unless it carries a long answer (a followed log) that is
 * only quiet: some clients (curl) end every stream at a GOAWAY.
 */
function closeWhenIdle(session: Http2Session, idleMs: number): void {
  session.setTimeout(idleMs, () => {
    if (!carriesLongAnswer(session)) session.close();
  });
}

interface H2Options {
  settings: ReturnType<typeof http2Settings>;
  maxSessionMemory: number;
  maxHeaderListPairs: number;
  http2SessionTimeout: number;
  Http2ServerResponse: typeof OneWriteResponse;
}

/**
 * A request with `Expect: 100-continue` goes to the app at once, without node's automatic 100 Continue: the
 * preParsing hook sends it once the request has passed every check that comes before its body (credentials, rate,
 * the body's declared length). A request refused before that gets its final answer instead, and the client, which
 * waits for one or the other, does not send a body that would only be dropped (curl waits a second, then sends).
 */
function answerExpectContinueLater(server: { on(event: 'checkContinue' | 'checkExpectation', listener: (req: unknown, res: unknown) => void): unknown; emit(event: 'request', req: unknown, res: unknown): boolean }): void {
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  // Any other expectation is ignored, as RFC 9110 10.1.1 allows (node would answer a bare 417 with no error body).
  server.on('checkExpectation', (req, res) => server.emit('request', req, res));
}

/**
 * fastify's serverFactory for cleartext: an HTTP/1.1 server (the one fastify listens on and closes) whose connections
 * are looked at first: one whose first bytes are HTTP/2's preface goes to an h2c server with the same handler, any
 * other to the HTTP/1.1 parser, the bytes read put back either way. A connection that sends nothing is closed after
 * the header timeout, as HTTP/1.1's would be, and at once when the server closes (silentUntilClose);
 * closeHttp2Sessions (which fastify calls on close) ends the h2c ones.
 */
function h1AndH2cServer(limitsOf: ServerLimits, h2: H2Options, linger: LingerBounds, slots: ConnectionSlots) {
  return (handler: RequestListener): Server => {
    const h1 = createServer(nodeServerOptions(limitsOf), handler);
    h1.keepAliveTimeout = limitsOf.keepAliveTimeoutMs;
    h1.requestTimeout = limitsOf.receiveTimeoutMs;
    answerExpectContinueLater(h1);
    lingerAfterLastAnswers(h1, linger);
    const h2c = createH2cServer({ settings: h2.settings, maxSessionMemory: h2.maxSessionMemory, maxHeaderListPairs: h2.maxHeaderListPairs, Http2ServerResponse: h2.Http2ServerResponse }, handler as unknown as Parameters<typeof createH2cServer>[1]);
    answerExpectContinueLater(h2c);
    refuseUnknownMethods(h2c as unknown as RequestListeners);
    boundHttp2Receive(h2c, limitsOf);
    const sessions = new Set<Http2Session>();
    h2c.on('session', (session: ServerHttp2Session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      closeWhenIdle(session, h2.http2SessionTimeout);
    });
    slots.watch(h1);
    slots.watch(h2c);
    const h1Listeners = h1.listeners('connection') as ((socket: Socket) => void)[];
    h1.removeAllListeners('connection');
    const silent = silentUntilClose(h1);
    h1.on('connection', (socket: Socket) => {
      if (!slots.admit(socket)) return;
      firstBytes(socket, limitsOf.headersTimeoutMs, silent, (chunk) => {
        if (startsH2Preface(chunk)) {
          // The h2c session reads what was put back itself (on its next tick). The HTTP/1.1 server's sockets stay
          // half open when the client ends: a session whose answers wait on flow control then never wrote again,
          // and held them (and the server's close) after its client had gone. HTTP/2 has no use for half a connection.
          socket.once('end', () => socket.destroy());
          h2c.emit('connection', socket);
          return;
        }
        for (const listener of h1Listeners) listener.call(h1, socket);
        socket.resume();
      });
    });
    Object.assign(h1, { closeHttp2Sessions: () => sessions.forEach((s) => s.close()) });
    return h1;
  };
}
