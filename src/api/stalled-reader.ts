// A long answer (a followed log, an event stream) whose reader stopped taking it: the answer's bytes wait unsent and,
// without this, its slot (64 per node) would be held for good by a client that neither reads nor closes. Cut once its
// written bytes have waited limits.longAnswerStallMsMax without any of them leaving, or once more than bytesMax wait.
import type { FastifyReply } from 'fastify';
import { limits } from '../lib/limits.js';
import { setIntervalOn, systemClock, type Clock } from '../lib/clock.js';

export interface StallBounds {
  /** Unsent bytes pending this long, none of them taken by the reader meanwhile: cut. */
  stallMsMax: number;
  /** How often the answer's unsent bytes are looked at. */
  checkMs: number;
}

export const defaultStallBounds: StallBounds = { stallMsMax: limits.longAnswerStallMsMax, checkMs: limits.longAnswerStallCheckMs };

/**
 * The bytes written to an answer and not yet taken by its socket: HTTP/1.1's response counts its own buffer and its
 * socket's, HTTP/2's its stream's (what flow control holds back). What the kernel's socket buffers already took is
 * not counted: a reader that stops is seen once those are full.
 */
export function unsentBytes(res: FastifyReply['raw']): number {
  return (res as { writableLength?: number }).writableLength ?? 0;
}

/**
 * Calls `cut` once `res` has held unsent bytes for bounds.stallMsMax with none of them leaving (its buffer neither
 * shrank nor drained between two looks). Answers the function that stops watching (call it when the answer ends).
 */
export function watchStall(res: FastifyReply['raw'], cut: (pendingBytes: number) => void, bounds: StallBounds = defaultStallBounds, clock: Clock = systemClock): () => void {
  let lastBytes = 0;
  let movedAtMs = clock.monoMs();
  const moved = (): void => {
    movedAtMs = clock.monoMs();
  };
  res.on('drain', moved);
  const timer = setIntervalOn(clock, () => {
    const bytes = unsentBytes(res);
    if (bytes === 0 || bytes < lastBytes) moved();
    lastBytes = bytes;
    if (bytes > 0 && clock.monoMs() - movedAtMs >= bounds.stallMsMax) {
      stop();
      cut(bytes);
    }
  }, bounds.checkMs);
  const stop = (): void => {
    timer.cancel();
    res.off('drain', moved);
  };
  return stop;
}
