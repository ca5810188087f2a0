// The answers a server holds unread are bounded across its connections: past the budget, the connections of the
// answers waiting longest are closed; young answers are never the ones closed, and a reader gets its answers whole.
import { EventEmitter } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBaseApp } from '../../src/api/http.js';
import { UnreadAnswers, unreadCountedBytesMin } from '../../src/api/unread-answers.js';
import { RawSockets } from '../support/raw-sockets.js';
import { waitFor } from '../support/wait.js';

class FakeRaw extends EventEmitter {
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}
const fakeReply = (): { reply: FastifyReply; raw: FakeRaw } => {
  const raw = new FakeRaw();
  return { reply: { raw } as unknown as FastifyReply, raw };
};

describe('UnreadAnswers', () => {
  it('closes the oldest answers past the budget, never young ones, and forgets finished ones', () => {
    let now = 0;
    const answers = new UnreadAnswers({ answersBytesMax: 100_000, ageMsMin: 1000, sessionBytesMax: 100_000 }, () => now);
    const a = fakeReply();
    const b = fakeReply();
    const c = fakeReply();
    answers.written(a.reply, 'x'.repeat(40_000));
    now = 10;
    answers.written(b.reply, Buffer.alloc(40_000));
    now = 2000;
    // Over the budget: a and b are old enough; closing a brings it back under.
    answers.written(c.reply, 'x'.repeat(40_000));
    expect([a.raw.destroyed, b.raw.destroyed, c.raw.destroyed]).toEqual([true, false, false]);
    expect(answers.heldBytes).toBe(80_000);
    expect(answers.closed).toBe(1);
    // A finished answer no longer counts.
    b.raw.emit('close');
    expect(answers.heldBytes).toBe(40_000);
    // Young answers alone over the budget: none is closed (c, old by then, is).
    now = 4000;
    const young = [fakeReply(), fakeReply(), fakeReply()];
    for (const y of young) answers.written(y.reply, 'x'.repeat(40_000));
    expect(young.map((y) => y.raw.destroyed)).toEqual([false, false, false]);
    expect(c.raw.destroyed).toBe(true);
    // Small answers are not counted.
    answers.written(fakeReply().reply, 'x'.repeat(unreadCountedBytesMin - 1));
    expect(answers.heldBytes).toBe(120_000);
  });
});

let app: FastifyInstance | null = null;
const sockets = new RawSockets();
afterEach(async () => {
  sockets.destroyAll();
  await app?.close();
  app = null;
});

// Larger than what loopback's socket buffers take (about 10 MB here), so an answer stays unfinished.
const pageBytes = 16 * 1024 * 1024;

const open = (port: number): Promise<Socket> => sockets.open(port);

describe('a server with clients that do not read', () => {
  it('closes the connections of the oldest unread answers past the budget; a reader gets its answer whole', async () => {
    app = buildBaseApp({ server: { unreadAnswersBytesMax: 2 * pageBytes, unreadAnswerAgeMsMin: 50 } });
    const page = 'x'.repeat(pageBytes);
    // The server's ends, in the order the requests came (a paused client does not see its connection close).
    const serverSides: Socket[] = [];
    app.get('/page', async (req) => {
      serverSides.push(req.raw.socket);
      return { page };
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const idle: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await open(port);
      s.pause();
      s.write('GET /page HTTP/1.1\r\nhost: x\r\n\r\n');
      idle.push(s);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The first ones asked are the ones cut off; the last ones are still open.
    await waitFor('the oldest non-reader to be closed', () => serverSides[0]?.destroyed === true, 10_000);
    expect(serverSides).toHaveLength(idle.length);
    expect(serverSides.at(-1)!.destroyed).toBe(false);
    const reader = await open(port);
    let bytes = 0;
    reader.on('data', (d: Buffer) => (bytes += d.length));
    reader.write('GET /page HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor('the reader to get the whole answer', () => bytes > pageBytes, 10_000);
  });
});
