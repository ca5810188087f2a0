// Parts of an app built when first asked for: a route of the app hands its request to a small app of their own and
// answers what that one answers. Used for what a manager serves rarely but would load and set up at every start
// otherwise: the OpenAPI document and explorer, the dashboard's static files. Built, the small app runs on a thread
// of its own (side-thread.ts): loading its packages and making the document took a manager's event loop away for
// half a second and more, long enough for a leader's followers to stop hearing it, and any client could ask first.
// Run from the TypeScript sources (tests, a stale dist/), it runs in process, since a thread cannot load them.
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, RouteHandlerMethod } from 'fastify';
import { SideThread, type SideAnswer, type SideRequest } from './side-thread.js';

/** Headers of the inner answer that belong to its own connection or request, not to the one relayed. */
const ownHeaders: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'content-length', 'x-request-id']);

/** Answers a request as the small app does. */
export type SideApp = (req: SideRequest) => Promise<SideAnswer>;

/** A handler that answers with what `side` answers to the same request. */
export function relayTo(side: SideApp): RouteHandlerMethod {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    // A HEAD is asked as the GET it copies: fastify's HEAD route then counts the body it leaves out.
    const method = req.method === 'HEAD' ? 'GET' : (req.method as HTTPMethods);
    // HTTP/2's pseudo-headers (:method, :path ...) are the request line, which inject is given on its own.
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (!name.startsWith(':') && value !== undefined) headers[name] = value;
    const res = await side({ method, url: req.url, headers });
    void reply.code(res.status);
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && !ownHeaders.has(name)) void reply.header(name, value);
    // An empty answer (a redirect) is sent as one: a Buffer, even an empty one, would be given a content type.
    return res.body.length === 0 ? reply.send() : reply.send(Buffer.from(res.body.buffer, res.body.byteOffset, res.body.length));
  };
}

/** How a small app is made: `exportName` of `module`, called with `data` (structured-cloneable: it may cross to a thread). */
export interface SideAppSpec<D> {
  readonly module: URL;
  readonly exportName: string;
  readonly data: () => D;
}

/**
 * The small app of `spec`, made on first use, on a thread when `module` is built JavaScript (else in process);
 * closed with `app`.
 */
export function sideApp<D>(app: FastifyInstance, spec: SideAppSpec<D>): SideApp {
  if (!spec.module.pathname.endsWith('.ts')) {
    const thread = new SideThread({ module: spec.module.href, exportName: spec.exportName, data: spec.data });
    app.addHook('onClose', () => thread.close());
    return (req) => thread.answer(req);
  }
  let made: Promise<FastifyInstance> | undefined;
  app.addHook('onClose', async () => {
    if (made !== undefined) await (await made).close();
  });
  const make = async (): Promise<FastifyInstance> => {
    const builders = (await import(spec.module.href)) as Record<string, (data: D) => Promise<FastifyInstance>>;
    return builders[spec.exportName]!(spec.data());
  };
  return async (req) => {
    const res = await (await (made ??= make())).inject({ method: req.method as HTTPMethods, url: req.url, headers: req.headers });
    return { status: res.statusCode, headers: res.headers as SideAnswer['headers'], body: res.rawPayload };
  };
}
