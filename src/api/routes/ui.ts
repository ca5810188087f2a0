// The web dashboard at /ui: static files from the repository's ui/ folder, and the browser builds of preact, htm
// and uPlot from node_modules under /ui/vendor/ (no bundler, no CDN). The page itself holds no secret: it asks
// for a token and talks to the API like any other client.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
import { redirectAnswer } from '../documented-answers.js';
import { staticPathError } from '../errors.js';
import { buildBaseApp } from '../http.js';
import { relayTo, sideApp } from '../relay.js';

export const uiRoot = fileURLToPath(new URL('../../../ui/', import.meta.url));

const require = createRequire(import.meta.url);

/** URL folder under /ui/vendor/ -> the package folder it serves, and the files it may serve there. */
const vendors: readonly { name: string; dir: string; files: RegExp }[] = [
  { name: 'preact', dir: dirname(require.resolve('preact')), files: /^\/preact\.module\.js(\.map)?$/ },
  { name: 'preact-hooks', dir: dirname(require.resolve('preact/hooks')), files: /^\/hooks\.module\.js(\.map)?$/ },
  { name: 'htm', dir: dirname(require.resolve('htm')), files: /^\/htm\.module\.js$/ },
  { name: 'uplot', dir: dirname(require.resolve('uplot')), files: /^\/uPlot\.(esm\.js|min\.css)$/ },
];

/** The routes this plugin adds (for the auth table: all open, the files are public). */
export const uiRoutePaths: readonly string[] = ['/ui', '/ui/*', ...vendors.map((v) => `/ui/vendor/${v.name}/*`)];

/** index.html's inline import map is the only inline script: the policy allows exactly it, by its hash. */
function contentSecurityPolicy(): string {
  let html = '';
  try {
    html = readFileSync(`${uiRoot}index.html`, 'utf8');
  } catch {
    // no dashboard files here (a trimmed install): /ui answers 404, and nothing inline is allowed
  }
  const inline = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '').digest('base64')}'`);
  // connect-src: the other managers' APIs, which the page falls over to when the one serving it goes down.
  return `default-src 'self'; script-src 'self' ${inline.join(' ')}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`;
}

/** The files themselves, served by @fastify/static in the small app the dashboard's routes relay to. */
const uiFiles: FastifyPluginAsync = async (app) => {
  const { default: fastifyStatic } = await import('@fastify/static');
  // Thrown on to the app's one error handler, which answers it.
  app.setErrorHandler(async (err, req) => {
    throw staticPathError(err, req.url, 'the dashboard');
  });
  const csp = contentSecurityPolicy();
  const setHeaders = (reply: FastifyReply): void => {
    void reply.header('content-security-policy', csp).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
  };
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
  await app.register(fastifyStatic, { root: uiRoot, prefix: '/ui/', index: 'index.html', setHeaders });
  for (const v of vendors) {
    await app.register(fastifyStatic, {
      root: v.dir,
      prefix: `/ui/vendor/${v.name}/`,
      decorateReply: false,
      allowedPath: (path) => v.files.test(path),
      setHeaders,
    });
  }
};

/** The small app serving the files (made by relay.ts's sideApp, on a thread of its own once built). */
export async function buildUiFilesApp(): Promise<FastifyInstance> {
  const inner = buildBaseApp({});
  await inner.register(uiFiles);
  await inner.ready();
  return inner;
}

/** The dashboard's routes: what they answer is made with the first request (relay.ts), not at every start. */
export const uiRoutes: FastifyPluginAsync = async (app) => {
  const relay = relayTo(sideApp(app, { module: new URL(import.meta.url), exportName: buildUiFilesApp.name, data: () => null }));
  // The files are left out of the OpenAPI document, as @fastify/static leaves them out; /ui sends the browser to them.
  const dashboard = { schema: { documentedResponse: { 302: redirectAnswer('to the dashboard, /ui/') } } };
  for (const url of uiRoutePaths) app.get(url, url.endsWith('/*') ? { schema: { hide: true } } : dashboard, relay);
};
