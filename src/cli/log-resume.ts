// Picking a followed log up again after a cut. The logs route resumes from nothing but a tail (no offset, no time), so
// the stream opened after a cut is asked for a tail, and what it brings first is held until the place where the cut
// stream ended is found in it, by the last lines shown: only what comes after is shown.
import { limits } from '../lib/limits.js';

/** What came of looking for where the cut stream ended, once the new stream's tail has come (settle). */
export interface Settled {
  /** The held lines to show: those after that place, or all of them when it was not found. */
  readonly lines: readonly string[];
  /** False: the last lines shown are not in the tail (it is past them, or the runtime no longer keeps them). */
  readonly found: boolean;
}

/** The lines shown of one attempt's output across its streams, and those held while a new stream is placed. */
export class FollowedLines {
  /** The newest lines shown (at most logResumeLinesMax of them, logResumeBytesMax bytes; the newest always). */
  private readonly shown: string[] = [];
  private shownBytes = 0;
  /** Non-null while a stream opened after a cut is held: its lines so far (the newest logResumeHeldBytesMax bytes). */
  private held: string[] | null = null;
  private heldBytes = 0;

  /** Whether a line was shown: the stream after a cut is asked for all the runtime keeps; else for the first tail. */
  get anyShown(): boolean {
    return this.shown.length > 0;
  }

  /** True while a stream opened after a cut is held (settle() ends it). */
  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * The stream was cut: the next one's lines are held until placed. Lines held from a stream cut before its tail had
   * all come are dropped (the next stream brings them again).
   */
  cut(): void {
    this.held = this.shown.length > 0 ? [] : null;
    this.heldBytes = 0;
  }

  /** The lines to show now of those the stream brought (none while held). */
  take(lines: readonly string[]): readonly string[] {
    const held = this.held;
    if (held === null) {
      for (const line of lines) this.remember(line);
      return lines;
    }
    for (const line of lines) {
      held.push(line);
      this.heldBytes += Buffer.byteLength(line) + 1;
    }
    // The oldest go first: the place looked for is near the tail's end, unless the stream is far past it.
    let drop = 0;
    while (this.heldBytes > limits.logResumeHeldBytesMax && drop < held.length - 1) this.heldBytes -= Buffer.byteLength(held[drop++]!) + 1;
    if (drop > 0) held.splice(0, drop);
    return [];
  }

  /** Ends the hold: the held lines after the last place where the lines shown last are found in them. */
  settle(): Settled {
    const held = this.held ?? [];
    this.held = null;
    this.heldBytes = 0;
    const end = endOfLast(this.shown, held);
    const lines = end === -1 ? held : held.slice(end);
    for (const line of lines) this.remember(line);
    return { lines, found: end !== -1 };
  }

  private remember(line: string): void {
    this.shown.push(line);
    this.shownBytes += Buffer.byteLength(line);
    while (this.shown.length > 1 && (this.shown.length > limits.logResumeLinesMax || this.shownBytes > limits.logResumeBytesMax)) {
      this.shownBytes -= Buffer.byteLength(this.shown.shift()!);
    }
  }
}

/**
 * Where the last occurrence of `needle` (not empty) in `hay` ends (the index after it), or -1. The last, as the tail
 * ends where the cut stream would have gone on: output that repeats itself is then shown from the newest repeat.
 */
export function endOfLast(needle: readonly string[], hay: readonly string[]): number {
  if (needle.length === 0) return -1;
  outer: for (let end = hay.length; end >= needle.length; end--) {
    for (let i = 0; i < needle.length; i++) if (hay[end - needle.length + i] !== needle[i]) continue outer;
    return end;
  }
  return -1;
}
