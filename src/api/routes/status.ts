// GET /status, open to anyone (a status monitor, a public page): up, degraded or down with the reasons, from this
// manager's view of the quorum, the leader and the workers, and its own storage state (`self`). No task, key or token
// data. HTML for a browser, JSON for `Accept: application/json` or `?format=json`.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { StatusSelf } from '../../contracts/services.js';
import { bodyAnswer, textSchema } from '../documented-answers.js';

/** What this manager sees, read from memory on each request. */
export interface StatusFacts {
  readonly leaderId: string | null;
  /** Voters this manager can reach (itself included), and all voters. */
  readonly votersReachable: number;
  readonly voters: number;
  /** Reachable voters (itself included) that are recovering their storage: they count towards no quorum. */
  readonly votersRecovering?: number;
  readonly workersReady: number;
  readonly workers: number;
  /** Drained workers that are not ready: taken out of service on purpose, so not counted as not ready. */
  readonly workersDrainedNotReady?: number;
  /** Ready workers that are neither drained nor paused: those new tasks can go to. */
  readonly workersActive?: number;
  /**
   * This manager knows it is no member of the cluster (removed; its own configuration, which still lists it, is
   * stale): it speaks for nobody, and says so rather than count voters it no longer has.
   */
  readonly notMember?: boolean;
  /** This manager's own id, role and storage (contracts/services.ts StatusSelf): answered as `self`. */
  readonly self?: StatusSelf;
}

export interface StatusSource {
  facts(): StatusFacts | Promise<StatusFacts>;
}

const StatusSelfReply = Type.Object({
  id: Type.String(),
  role: Type.Union([Type.Literal('leader'), Type.Literal('follower'), Type.Literal('candidate'), Type.Literal('precandidate')]),
  storage: Type.Union([Type.Literal('ok'), Type.Literal('recovering')]),
  storageTargetIndex: Type.Union([Type.Integer(), Type.Null()]),
  commitIndex: Type.Union([Type.Integer(), Type.Null()]),
});

export const StatusReply = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('degraded'), Type.Literal('down')]),
  reasons: Type.Array(Type.String()),
  quorum: Type.Boolean(),
  leader: Type.Union([Type.String(), Type.Null()]),
  managersReachable: Type.Integer(),
  managers: Type.Integer(),
  workersReady: Type.Integer(),
  workers: Type.Integer(),
  /** Added after the first release: absent from older managers. */
  self: Type.Optional(StatusSelfReply),
});
export type StatusReply = Static<typeof StatusReply>;

/**
 * down: no leader or no quorum; degraded: a manager unreachable, a worker not ready (one drained on purpose aside), none
 * at all, or none that takes new tasks; else up.
 */
export function judgeStatus(f: StatusFacts): StatusReply {
  if (f.notMember === true) {
    return {
      status: 'down', reasons: ['this manager is not a member of the cluster (removed): ask another manager'], quorum: false, leader: null,
      managersReachable: 0, managers: 0, workersReady: 0, workers: 0, ...selfOf(f),
    };
  }
  const recovering = f.votersRecovering ?? 0;
  const quorum = f.votersReachable - recovering > f.voters / 2;
  const reasons: string[] = [];
  if (!quorum) reasons.push(`no quorum: ${f.votersReachable} of ${f.voters} managers reachable${recovering > 0 ? `, ${recovering} of them recovering their storage` : ''}`);
  if (f.leaderId === null) reasons.push('no leader');
  const down = reasons.length > 0;
  if (quorum && f.votersReachable < f.voters) reasons.push(`${f.voters - f.votersReachable} of ${f.voters} managers unreachable`);
  if (quorum && recovering > 0) reasons.push(`${recovering} of ${f.voters} managers recovering their storage`);
  if (f.workers === 0) reasons.push('no worker registered');
  else {
    const notReady = f.workers - f.workersReady - (f.workersDrainedNotReady ?? 0);
    if (notReady > 0) reasons.push(`${notReady} of ${f.workers} workers not ready`);
    // Every worker drained or paused (ready or not): nothing new can be placed anywhere.
    if (f.workersActive === 0 && notReady < f.workers) reasons.push('no worker takes new tasks: each is drained, paused or not ready');
  }
  return {
    status: down ? 'down' : reasons.length > 0 ? 'degraded' : 'up',
    reasons,
    quorum,
    leader: f.leaderId,
    managersReachable: f.votersReachable,
    managers: f.voters,
    workersReady: f.workersReady,
    workers: f.workers,
    ...selfOf(f),
  };
}

/** `self` as answered: the log positions only while recovering, whatever the source passed. */
function selfOf(f: StatusFacts): { self?: StatusSelf } {
  if (f.self === undefined) return {};
  const { id, role, storage } = f.self;
  const recovering = storage === 'recovering';
  return { self: { id, role, storage, storageTargetIndex: recovering ? f.self.storageTargetIndex : null, commitIndex: recovering ? f.self.commitIndex : null } };
}

// Other parameters are passed over: monitors add their own (cache busters), as for /health and /metrics.
const StatusQuery = Type.Object({ format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('html')])) });

const statusAnswer = bodyAnswer('always 200: the status, as JSON (Accept: application/json, ?format=json or no Accept) or an HTML page', { 'application/json': StatusReply, 'text/html': textSchema });

export const statusRoutes: FastifyPluginAsync<{ source: StatusSource }> = async (app, opts) => {
  app.get('/status', { schema: { querystring: StatusQuery, documentedResponse: { 200: statusAnswer } } }, async (req, reply) => {
    const status = judgeStatus(await opts.source.facts());
    const { format } = req.query as Static<typeof StatusQuery>;
    const wantsJson = format === 'json' || (format === undefined && !prefersHtml(req.headers.accept));
    // Always 200: the answer is the page, whatever it says (GET /ready is the probe that answers 503).
    void reply.header('cache-control', 'no-store');
    if (wantsJson) return reply.type('application/json; charset=utf-8').send(JSON.stringify(status));
    return reply.type('text/html; charset=utf-8').send(statusPage(status));
  });
};

/** A browser asks for text/html before anything JSON; curl and monitors send no Accept or * / *. */
function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const html = accept.indexOf('text/html');
  if (html < 0) return false;
  const json = accept.indexOf('application/json');
  return json < 0 || html < json;
}

const colours = { up: '#1a7f37', degraded: '#9a6700', down: '#cf222e' } as const;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function selfStorage(self: StatusSelf): string {
  if (self.storage === 'ok') return 'storage ok';
  return self.storageTargetIndex === null ? 'recovering its storage' : `recovering its storage (${self.commitIndex ?? 0} of ${self.storageTargetIndex})`;
}

function statusPage(s: StatusReply): string {
  const reasons = s.reasons.length === 0 ? '<p>Everything is working.</p>' : `<ul>${s.reasons.map((r) => `<li>${escapeHtml(r)}</li>`).join('')}</ul>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="10"><title>Minkube: ${s.status}</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}h1 span{color:${colours[s.status]}}td{padding:.2em 1em .2em 0}</style>
</head><body>
<h1>Minkube is <span>${s.status}</span></h1>
${reasons}
<table>
<tr><td>Leader</td><td>${s.leader === null ? 'none' : escapeHtml(s.leader)}</td></tr>
<tr><td>Managers reachable</td><td>${s.managersReachable} of ${s.managers}${s.quorum ? ' (quorum)' : ' (no quorum)'}</td></tr>
<tr><td>Workers ready</td><td>${s.workersReady} of ${s.workers}</td></tr>
${s.self === undefined ? '' : `<tr><td>This manager</td><td>${escapeHtml(s.self.id)}, ${selfStorage(s.self)}</td></tr>\n`}</table>
<p><a href="/status?format=json">JSON</a></p>
</body></html>
`;
}
