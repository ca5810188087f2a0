// What a daemon's start-up opened, closed in reverse: by stop(), and when a later step of start-up fails, so that a
// failed start leaves nothing open (manager.ts and worker.ts push each part as they open it).
import type { Logger } from 'pino';

/** A stack of close functions: start-up pushes each part as it opens it; closing runs them newest first. */
export class Closers {
  private readonly stack: { what: string; close: () => Promise<void> | void }[] = [];

  push(what: string, close: () => Promise<void> | void): void {
    this.stack.push({ what, close });
  }

  /** Closes every part, newest first; a part that fails to close is logged, and the rest are closed all the same. */
  async closeAll(logger: Logger): Promise<void> {
    for (let part = this.stack.pop(); part !== undefined; part = this.stack.pop()) {
      try {
        await part.close();
      } catch (err) {
        logger.warn({ err, part: part.what }, 'closing a part failed');
      }
    }
  }
}
