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

/** Descriptors this process holds open; null when that cannot be read. */
export function countOpenFds(): number | null {
  try {
    // Less the one readdir held while it read.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
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
  /** Said at most every warnIntervalMs while connections are turned away or the process is out of descriptors. */
  warn: (shortage: FdShortage) => void;
  /** The process is out of descriptors: give back what can be (idle connections). */
  shed?: () => void;
  checkIntervalMs?: number;
  warnIntervalMs?: number;
}

const outOfFds = new Set(['EMFILE', 'ENFILE']);

/**
 * Watches one server's share of the process's descriptors. A new connection whose descriptor is within
 * fdsReserved(limit) of the limit is `crowded` (the server treats it as one past its connection cap): connections
 * alone can never take the descriptors the rest of the process needs. A descriptor's number says how full the table
 * is, since the kernel hands out the lowest free one.
 *
 * Every checkIntervalMs it opens a descriptor: when that fails the process is out (prlimit lowered the limit under
 * what it holds, or something else used them all up), and the kernel's queue of a listening socket is not taken from:
 * libuv retries accept without end, and clients waited until they gave up (15 s), with nothing logged. libuv keeps a
 * spare descriptor for this case, but not always one below the limit. So the watch keeps one of its own: when out,
 * it lets it go, reads the limit with it, and libuv's next accepts take the queued connections one by one on it,
 * each closed at once (crowded says so while out), before the spare is taken back; it also asks the server to give
 * back its idle connections.
 */
export class FdWatch {
  private limit: number | null = null;
  private out = false;
  private spare: number | null = null;
  private ticks: Timer | null = null;
  private lastWarnMs = -Infinity;
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

  /** Whether a new connection on descriptor `fd` is one too many: the process is out, or fd is in the reserved few. */
  crowded(fd: number | undefined): boolean {
    if (this.out) return true;
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

  /** One look: the limit read again, and whether a descriptor can still be opened. */
  check(): void {
    let probe: number;
    try {
      probe = openSync('/dev/null', 'r');
    } catch (err) {
      if (outOfFds.has((err as NodeJS.ErrnoException).code ?? '')) this.runOut();
      return;
    }
    closeSync(probe);
    this.out = false;
    this.limit = readFdLimit() ?? this.limit;
    this.spare ??= openSpare();
  }

  private runOut(): void {
    this.out = true;
    this.releaseSpare();
    this.limit = readFdLimit() ?? this.limit;
    this.o.shed?.();
    this.maybeWarn();
    // After this turn's accepts (the poll phase comes before setImmediate's): the spare is taken back.
    setImmediate(() => {
      if (this.ticks !== null) this.spare ??= openSpare();
    });
  }

  private maybeWarn(): void {
    const now = this.o.clock.monoMs();
    if (now - this.lastWarnMs < this.warnIntervalMs) return;
    this.lastWarnMs = now;
    const limit = this.limit;
    this.o.warn({ fdLimit: limit, fdsReserved: limit === null ? null : fdsReserved(limit), openFds: countOpenFds(), connectionsRefused: this.refused, processOut: this.out });
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
