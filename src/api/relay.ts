// Parts of an app built when first asked for: a route of the app hands its request to a small app of their own
// (through inject) and answers what that one answers. Used for what a manager serves rarely but would load and set
// up at every start otherwise: the OpenAPI document and explorer, the dashboard's static files.
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, RouteHandlerMethod } from 'fastify';

/** Headers of the inner answer that belong to its own connection or request, not to the one relayed. */
const ownHeaders: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'content-length', 'x-request-id']);

/** A handler that answers with what `inner` (made with the first request) answers to the same request. */
export function relayTo(inner: () => Promise<FastifyInstance>): RouteHandlerMethod {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    // A HEAD is asked as the GET it copies: fastify's HEAD route then counts the body it leaves out.
    const method = req.method === 'HEAD' ? 'GET' : (req.method as HTTPMethods);
    // HTTP/2's pseudo-headers (:method, :path ...) are the request line, which inject is given on its own.
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !name.startsWith(':')));
    const res = await (await inner()).inject({ method, url: req.url, headers });
    void reply.code(res.statusCode);
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && !ownHeaders.has(name)) void reply.header(name, value);
    // An empty answer (a redirect) is sent as one: a Buffer, even an empty one, would be given a content type.
    return res.rawPayload.length === 0 ? reply.send() : reply.send(res.rawPayload);
  };
}

/** `make` once, on first use; closed with `app` if it was made. */
export function madeOnFirstUse(app: FastifyInstance, make: () => Promise<FastifyInstance>): () => Promise<FastifyInstance> {
  let made: Promise<FastifyInstance> | undefined;
  app.addHook('onClose', async () => {
    if (made !== undefined) await (await made).close();
  });
  return () => (made ??= make());
}
