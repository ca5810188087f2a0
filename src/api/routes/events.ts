// GET /v1/events: the dashboard's live feed as server-sent events (text/event-stream). The client reads it with
// fetch() and an Authorization header like any other route (EventSource cannot send one), so no credential ever
// travels in a URL. Bounded: at most limits.eventStreamsMax streams per manager, and a stream whose socket falls
// limits.eventStreamQueueBytesMax behind, or whose unsent bytes wait limits.longAnswerStallMsMax with none taken
// (stalled-reader.ts), is closed (its client reconnects and starts from a fresh snapshot).
import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { DashboardEvent, EventsService } from '../../contracts/services.js';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { authorize, type Resource } from '../../security/policy.js';
import { bodyAnswer, textSchema } from '../documented-answers.js';
import { principalOf } from '../principal.js';
import { watchCredential } from '../credential-watch.js';
import { answerHead, cutAnswer, longAnswerHeaders } from '../text-stream.js';
import { defaultStallBounds, unsentBytes, watchStall, type StallBounds } from '../stalled-reader.js';
import { NoQuery } from '../schemas.js';

export interface EventRoutesOptions {
  events: EventsService;
  /** For tests (default limits.eventStreamsMax). */
  streamsMax?: number;
  /** For tests (default defaultStallBounds). */
  stall?: StallBounds;
}

/** What a stream may show beside the cluster view (cluster:read): each part needs its own read permission. */
interface Visible {
  readonly workers: boolean;
  readonly tasks: boolean;
}

/** The event as a caller who may not read workers or tasks sees it (null: nothing to send). */
export function visiblePart(event: DashboardEvent, v: Visible): DashboardEvent | null {
  if (v.workers && v.tasks) return event;
  if (event.type === 'tasks') return v.tasks ? event : null;
  const data = { ...event.data };
  if (!v.workers) data.workers = [];
  if (!v.tasks) data.tasks = { pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, stopped: 0, lost: 0 };
  return { type: 'snapshot', data };
}

/** One event in the wire format: `event: TYPE`, `data: JSON`, blank line. */
export function formatEvent(event: DashboardEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

const eventsAnswer = bodyAnswer('server-sent events, `snapshot` and `tasks`, until the client leaves', { 'text/event-stream': textSchema });

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, opts) => {
  const streamsMax = opts.streamsMax ?? limits.eventStreamsMax;
  const streams = new Set<ServerResponse>();
  // Serialized once for every stream: the feed hands each stream the same object.
  const texts = new WeakMap<DashboardEvent, string>();
  // A stream never ends by itself: end them all, or app.close() would wait for them forever.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  app.get('/v1/events', { schema: { querystring: NoQuery, documentedResponse: { 200: eventsAnswer } } }, async (req, reply) => {
    if (streams.size >= streamsMax) throw new MinkubeError('QUEUE_FULL', `this manager already serves ${streamsMax} event streams; try another manager`);
    const headers = longAnswerHeaders(reply, 'text/event-stream; charset=utf-8');
    // The GET's answer without its body, and no slot: a HEAD that held one would never give it back.
    if (req.method === 'HEAD') return answerHead(reply, headers);
    void reply.hijack();
    const res = reply.raw;
    res.writeHead(200, headers);
    // The reconnection delay an EventSource would use, and a first byte so that proxies and fetch() start reading.
    res.write('retry: 1000\n: minkube events\n\n');
    streams.add(res);
    const principal = principalOf(req);
    const may = (resource: Resource): boolean => principal === null || principal.kind === 'node' || authorize(principal, { resource, verb: 'read' }).allowed;
    const visible: Visible = { workers: may('workers'), tasks: may('tasks') };
    const whole = visible.workers && visible.tasks;
    const subscription = opts.events.subscribe((event) => {
      if (res.writableEnded || res.destroyed) return;
      if (unsentBytes(res) > limits.eventStreamQueueBytesMax) {
        req.log.warn({ queuedBytes: unsentBytes(res) }, 'an event stream fell too far behind; closing it');
        cutAnswer(res);
        return;
      }
      if (!whole) {
        const part = visiblePart(event, visible);
        if (part !== null) res.write(formatEvent(part));
        return;
      }
      let text = texts.get(event);
      if (text === undefined) texts.set(event, (text = formatEvent(event)));
      res.write(text);
    });
    // Cut once its token is revoked or expires: the dashboard's reconnect then meets the 401 and asks to log in again.
    const unwatch = watchCredential(req, () => cutAnswer(res));
    // A reader that stopped while events are few: its socket's buffers may take many minutes to hold 4 MiB more.
    const unwatchStall = watchStall(res, (queuedBytes) => {
      req.log.warn({ queuedBytes }, 'the reader of an event stream stopped reading; closing it');
      cutAnswer(res);
    }, opts.stall ?? defaultStallBounds);
    res.once('close', () => {
      unwatch();
      unwatchStall();
      subscription.close();
      streams.delete(res);
    });
  });
};
