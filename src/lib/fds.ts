// File descriptors as Linux shows them: the process's limit (RLIMIT_NOFILE, from /proc/self/limits, read again and
// again since `prlimit` changes it under a running process; Node has no getrlimit) and how close a new descriptor is
// to it. Without /proc (another system) nothing is known, and nothing is refused for it.
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setIntervalOn, type Clock, type Timer } from './clock.js';
import { limits } from './limits.js';

/** The soft limit of "Max open files" in the text of /proc/self/limits: Infinity for unlimited, null when absent. */
export function parseMaxOpenFiles(text: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined || soft === '') return null;
  if (soft === 'unlimited') return Infinity;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** This process's descriptor limit now; null when it cannot be read (no /proc, or no descriptor free to read it). */
export function readFdLimit(): number | null {
  try {
    return parseMaxOpenFiles(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/** Descriptors this process holds open (those numbered below `below` only, if given); null when that cannot be read. */
export function countOpenFds(below = Infinity): number | null {
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return null;
  }
  let n = 0;
  for (const name of names) if (Number(name) < below) n++;
  // Less the one readdir held while it read.
  return n - 1;
}

/** Descriptors below `limit` that a server's connections leave to the rest of the process: storage, peers, clients. */
export function fdsReserved(limit: number): number {
  return Math.min(limits.processFdsReservedMax, Math.max(limits.processFdsReservedMin, Math.floor(limit / limits.processFdsReservedDivisor)));
}

/** What a warning about descriptors says. */
export interface FdShortage {
  fdLimit: number | null;
  fdsReserved: number | null;
  openFds: number | null;
  /** New connections closed at once since the last warning. */
  connectionsRefused: number;
  /** The process could open no descriptor at all (not only its connections were past their share). */
  processOut: boolean;
}

export interface FdWatchOptions {
  clock: Clock;
  /** Said at most every warnIntervalMs (for each of the two kinds) while connections are turned away or the process is out. */
  warn: (shortage: FdShortage) => void;
  /** The process is out of descriptors: give back what can be (idle connections). */
  shed?: () => void;
  checkIntervalMs?: number;
  warnIntervalMs?: number;
}

const outOfFds = new Set(['EMFILE', 'ENFILE']);

/**
 * Watches one server's share of the process's descriptors. A new connection is `crowded` (the server treats it as one
 * past its connection cap) when its descriptor is within fdsReserved(limit) of the limit (the kernel hands out the
 * lowest free one, so its number says how full the table is), or when, at the last look, fewer than that were free
 * below the limit (holes left by closes are handed out first). So connections alone never take the descriptors the
 * rest of the process needs: its storage's files, its peers' connections, its outgoing calls.
 *
 * Every checkIntervalMs it also opens a descriptor. When that fails the process is out (a limit lowered under what it
 * holds, or something else used them up): accept fails too, and libuv closes queued connections at once only while
 * its own spare descriptor lies below the limit; otherwise it retries without end and clients waited until they gave
 * up, nothing logged. The watch then lets go of a spare of its own (to read the limit, and so that queued connections
 * are taken and closed, as crowded says while out) and takes it back after this turn's accepts, and has the server
 * give back its idle connections. Both cases are said at warn, each at most every warnIntervalMs.
 */
export class FdWatch {
  private limit: number | null = null;
  private out = false;
  /** At the last look, fewer descriptors than the reserve were free below the limit (some may be above it). */
  private short = false;
  private spare: number | null = null;
  private ticks: Timer | null = null;
  /** When each kind of warning was last said: a process out of descriptors is said even just after a crowded port. */
  private readonly lastWarnMs = { crowded: -Infinity, out: -Infinity };
  private refused = 0;
  private readonly checkIntervalMs: number;
  private readonly warnIntervalMs: number;

  constructor(private readonly o: FdWatchOptions) {
    this.checkIntervalMs = o.checkIntervalMs ?? limits.fdCheckIntervalMs;
    this.warnIntervalMs = o.warnIntervalMs ?? limits.fdWarnIntervalMs;
  }

  start(): void {
    if (this.ticks !== null) return;
    this.limit = readFdLimit();
    this.spare = openSpare();
    this.ticks = setIntervalOn(this.o.clock, () => this.check(), this.checkIntervalMs);
  }

  stop(): void {
    this.ticks?.cancel();
    this.ticks = null;
    this.releaseSpare();
  }

  /** The limit as last read (null: unknown). */
  get fdLimit(): number | null {
    return this.limit;
  }

  /**
   * Whether a new connection on descriptor `fd` is one too many: the process is out, fewer than the reserve were free
   * at the last look, or fd is in the reserved few below the limit.
   */
  crowded(fd: number | undefined): boolean {
    if (this.out || this.short) return true;
    if (fd === undefined || fd < 0 || this.limit === null) return false;
    return fd >= this.limit - fdsReserved(this.limit);
  }

  /** A crowded connection was closed at once (rather than given an idle one's place). */
  refusedOne(): void {
    this.refused++;
    this.maybeWarn();
  }

  /** An idle connection was closed for a crowded one: still said, as the server is at its share. */
  evictedOne(): void {
    this.maybeWarn();
  }

  /** One look: the limit read again, and whether a descriptor can still be opened (when not, the process is out). */
  check(): void {
    if (!this.look()) this.runOut();
  }

  /** Whether a descriptor could be opened; when it could, the limit and the descriptors free below it are read again. */
  private look(): boolean {
    let probe: number;
    try {
      probe = openSync('/dev/null', 'r');
    } catch (err) {
      return !outOfFds.has((err as NodeJS.ErrnoException).code ?? '');
    }
    closeSync(probe);
    this.out = false;
    this.limit = readFdLimit() ?? this.limit;
    this.spare ??= openSpare();
    // Counted, not only judged by a new descriptor's number: after closes the kernel hands out low numbers while few
    // are free, and a limit lowered under the process leaves it holding descriptors above it.
    const limit = this.limit;
    const below = limit === null || limit === Infinity ? null : countOpenFds(limit);
    this.short = limit !== null && below !== null && limit - below < fdsReserved(limit);
    return true;
  }

  private runOut(): void {
    this.out = true;
    this.releaseSpare();
    this.limit = readFdLimit() ?? this.limit;
    // Counted before the idle connections are given back: the warning says what the process held when it ran out.
    const openFds = countOpenFds();
    this.o.shed?.();
    this.maybeWarn(openFds);
    // After this turn's accepts (the poll phase comes before setImmediate's): the spare is taken back, and the process
    // is looked at again, so that the connections given back serve new ones at once, not a look later.
    setImmediate(() => {
      if (this.ticks === null) return;
      this.spare ??= openSpare();
      this.look();
    });
  }

  private maybeWarn(openFds?: number | null): void {
    const now = this.o.clock.monoMs();
    const kind = this.out ? 'out' : 'crowded';
    if (now - this.lastWarnMs[kind] < this.warnIntervalMs) return;
    this.lastWarnMs[kind] = now;
    const limit = this.limit;
    this.o.warn({ fdLimit: limit, fdsReserved: limit === null ? null : fdsReserved(limit), openFds: openFds === undefined ? countOpenFds() : openFds, connectionsRefused: this.refused, processOut: this.out });
    this.refused = 0;
  }

  private releaseSpare(): void {
    if (this.spare === null) return;
    closeSync(this.spare);
    this.spare = null;
  }
}

function openSpare(): number | null {
  try {
    return openSync('/dev/null', 'r');
  } catch {
    return null;
  }
}

/** The descriptor of a TCP socket (undefined where node does not say). */
export function socketFd(socket: unknown): number | undefined {
  const fd = (socket as { _handle?: { fd?: unknown } } | undefined)?._handle?.fd;
  return typeof fd === 'number' ? fd : undefined;
}

/** A warning's words: what an operator sees in the log. */
export function fdShortageMessage(s: FdShortage): string {
  const limit = s.fdLimit === null ? 'limit unknown' : `limit ${s.fdLimit}`;
  const advice = 'raise the limit (LimitNOFILE= in a systemd unit, ulimit -n, docker run --ulimit nofile=)';
  if (s.processOut) return `out of file descriptors (${limit}): new API connections are closed at once and idle ones given back until some are free; ${advice}`;
  return `out of file descriptors for API connections (${limit}, the last ${s.fdsReserved} kept for storage, peers and outgoing connections): a new connection takes the place of an idle one, or is closed at once; ${advice}`;
}

/**
 * What a port says when it starts under a limit too low for its connectionsMax beside the reserve (null: nothing to
 * say): past limit - reserve descriptors its connections are capped sooner than connectionsMax says.
 */
export function fdLimitNote(limit: number | null, connectionsMax: number): string | null {
  if (limit === null || limit - fdsReserved(limit) >= connectionsMax) return null;
  const reserved = fdsReserved(limit);
  return `the file descriptor limit (${limit}) is below the ${connectionsMax} connections this port takes plus the ${reserved} kept for the rest of the process: past descriptor ${limit - reserved} a new connection takes an idle one's place or is closed at once; raise the limit (LimitNOFILE= in a systemd unit, ulimit -n)`;
}
