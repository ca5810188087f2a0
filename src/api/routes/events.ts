// GET /v1/events: the dashboard's live feed as server-sent events (text/event-stream). The client reads it with
// fetch() and an Authorization header like any other route (EventSource cannot send one), so no credential ever
// travels in a URL. Bounded: at most limits.eventStreamsMax streams per manager, and a stream whose socket falls
// limits.eventStreamQueueBytesMax behind is closed (its client reconnects and starts from a fresh snapshot).
import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { DashboardEvent, EventsService } from '../../contracts/services.js';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';

export interface EventRoutesOptions {
  events: EventsService;
  /** For tests (default limits.eventStreamsMax). */
  streamsMax?: number;
}

/** One event in the wire format: `event: TYPE`, `data: JSON`, blank line. */
export function formatEvent(event: DashboardEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, opts) => {
  const streamsMax = opts.streamsMax ?? limits.eventStreamsMax;
  const streams = new Set<ServerResponse>();
  // Serialized once for every stream: the feed hands each stream the same object.
  const texts = new WeakMap<DashboardEvent, string>();
  // A stream never ends by itself: end them all, or app.close() would wait for them forever.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  app.get('/v1/events', async (req, reply) => {
    if (streams.size >= streamsMax) throw new MinkubeError('QUEUE_FULL', `this manager already serves ${streamsMax} event streams; try another manager`);
    void reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    // The reconnection delay an EventSource would use, and a first byte so that proxies and fetch() start reading.
    res.write('retry: 1000\n: minkube events\n\n');
    streams.add(res);
    const subscription = opts.events.subscribe((event) => {
      if (res.writableEnded || res.destroyed) return;
      if (res.writableLength > limits.eventStreamQueueBytesMax) {
        req.log.warn({ queuedBytes: res.writableLength }, 'an event stream fell too far behind; closing it');
        res.destroy();
        return;
      }
      let text = texts.get(event);
      if (text === undefined) texts.set(event, (text = formatEvent(event)));
      res.write(text);
    });
    res.once('close', () => {
      subscription.close();
      streams.delete(res);
    });
  });
};
