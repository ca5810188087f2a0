// ProcessRuntime: tasks as plain processes, for hosts without Docker. Each process gets a JSON record, a log file and
// (once it ends) an exit file under the state dir, and runs detached with its output going straight to that file, so
// it outlives a worker restart and the next worker re-adopts it with list(), even when its record was lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import { constants as fsConstants, watch as watchFile, type StatsFs } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import { makeDirs } from '../lib/make-dirs.js';
import { classifyRuntimeError } from './classify.js';
import { dueAfterChangeMs, followSource, keepNewest, newLogCheck, nextCheckSpacingMs, readWholeLinesTail, WholeLines, type FollowPosition, type LogCheck, type Rotation } from './log-rotation.js';
import { MarkedSignaller, readProcStat, scanMarked, systemProc, type ProcReader } from './proc.js';
import { labelsMatch, tailBytes, tailLines, validateRunSpec } from './spec.js';
import { RuntimeFailure, type ContainerInfo, type ContainerRuntime, type ExitStatus as WaitStatus, type RunSpec } from './types.js';

export interface ProcessRuntimeOptions {
  stateDir: string;
  logger?: Logger;
  /**
   * The longest a running process's log goes unlooked at for rotation (a log growing fast is looked at more often,
   * down to limits.processLogCheckMsMin).
   */
  rotateCheckMs?: number;
  /** Whether a log's growth, seen by a watch on the file, brings its next look forward (default true). */
  watchLogs?: boolean;
  logFileBytesMax?: number;
  /** How often adopted processes (not children of this instance) are looked at in /proc while waited on. */
  adoptedPollMs?: number;
  /** Timers of the adopted-process watcher and of log checks. Default: the system clock (log checks unref'd). */
  clock?: Clock;
  /** The environment every process starts from (spec.env is merged on top). Default: PATH and HOME of the worker. */
  baseEnv?: Record<string, string>;
  /** Where processes are looked at: /proc, unless a test counts the reads. */
  proc?: ProcReader;
}

export { readProcStat } from './proc.js';

/** What survives a worker restart: enough to find the process again and to answer inspect/list for it. */
interface ProcessRecord {
  id: string;
  name: string;
  image: string;
  command: string[];
  labels: Record<string, string>;
  resources?: { cpus?: number; memoryMb?: number };
  /** What stop() sends first (absent: SIGTERM; records written before it existed have none). */
  stopSignal?: NodeJS.Signals;
  /** The wrapper shell's (see wrapperScript), which leads the process group; the command is its only child. */
  pid: number;
  /** /proc/<pid>/stat start time: tells our process from a later one that reused the pid. null off Linux. */
  pidStartTicks: string | null;
  state: 'running' | 'exited';
  exitCode: number | null;
  startedAt: number;
  finishedAt?: number;
}

/**
 * What the wrapper carries as its $1 (see wrapperScript) besides the id and state dir its exit file names: the rest of
 * the record but for what /proc tells, so a later instance can rebuild the record if it is lost (adoptOrphans).
 */
type Marker = Pick<ProcessRecord, 'name' | 'image' | 'labels' | 'resources' | 'stopSignal' | 'startedAt'>;

interface Entry {
  record: ProcessRecord;
  /** Only for processes this instance started; adopted ones are watched through /proc. */
  exited?: Promise<void>;
  /**
   * Woken when the record turns exited. Each waiter removes itself when it wakes for any reason, so a process that
   * runs for days holds only its current waiters: racing `exited` on every poll left one reaction on it per poll.
   */
  waiters: Set<() => void>;
  writes: Promise<void>;
  /** stop() sent SIGKILL, which kills the wrapper before it can write the exit file. */
  killed?: boolean;
  /** A write of this process's files failed for lack of space (what failed, naming the file): see wait(). */
  noSpace?: string;
  /** Adopted only: how many wait on it (wait(), followers); the shared watcher looks at it only while some do. */
  watching: number;
  /** Adopted only: monoMs of the last look in /proc (list() takes one younger than adoptedPollMs as it is). */
  checkedMs?: number;
  /** Running only: when its log is next looked at for rotation (see checkDueLogs). */
  logCheck?: LogCheck;
  /** Rotations of its log by this instance; the last one's .1 holds [base, end) of the file as it was then. */
  rotation: Rotation;
  /** Rotations and reads of the log take turns: a follower's read never straddles a copy and truncate. */
  logTurn: Promise<void>;
}

interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Spawned {
  child: ChildProcess;
  exit: Promise<ExitStatus>;
}

/**
 * Runs the command as the only child of a shell that outlives the worker, and writes the command's exit status to the
 * exit file ($0) when it ends: a restarted worker has no other way to learn the exit code of a process that is not
 * its child. $1, the Marker, is there only to be read from /proc/<pid>/cmdline (findWrappers), and is dropped. The
 * command is exec'd in a subshell (never a shell builtin or function of the same name) with the env, cwd, fds and
 * signal dispositions it would get without the shell: the names a shell sets or changes by itself are unset and given
 * back as the task had them (the NAME=value arguments before --); the shell's own stderr (its "Terminated" notes) goes
 * to /dev/null, the command's to the log. A stop signals the whole group: the shell only notes the signals a stop may
 * send (trap), so it lives to record that the command died of one (128 + N, as exitCodeForSignal); SIGKILL kills it
 * too, and then there is no file. No variables: any name could be the task's. No rename: the file is read only once
 * the shell is gone, and a half-written one (no newline) reads as no code.
 */
const wrapperScript = [
  'trap : HUP INT QUIT TERM USR1 USR2',
  'shift',
  'unset PWD OLDPWD SHLVL IFS PS1 PS2 PS4',
  'while [ "$1" != -- ]; do export "$1"; shift; done; shift',
  'exec 3>&2 2>/dev/null',
  '( exec "$@" 2>&3 3>&- )',
  'set -- "$?"',
  'printf \'%s\\n\' "$1" > "$0"',
  'exit "$1"',
].join('\n');
/** Variables dash, bash or busybox sh export or change at start (OPTIND too, but dash cannot unset it). */
const shellVars = ['PWD', 'OLDPWD', 'SHLVL', 'IFS', 'PS1', 'PS2', 'PS4'];
/** The PATH a command is looked up in when its environment has none: the default of a Debian /bin/sh. */
const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** How often a stop looks for its adopted process's exit, and a follower at its log file. */
const pollMs = 100;
/** The most a follower reads of a log file at once. */
const followChunkBytes = 64 * 1024;
const killWaitMs = 5000;

/** The system clock with timers that do not keep the process alive (log checks: nothing waits on them). */
const unrefClock: Clock = {
  nowMs: () => systemClock.nowMs(),
  monoMs: () => systemClock.monoMs(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

function newEntry(record: ProcessRecord): Entry {
  return { record, waiters: new Set(), writes: Promise.resolve(), watching: 0, rotation: { count: 0, base: 0, end: 0 }, logTurn: Promise.resolve() };
}

export class ProcessRuntime implements ContainerRuntime {
  readonly kind = 'process' as const;
  private readonly dir: string;
  private readonly logger: Logger | undefined;
  private readonly logFileBytesMax: number;
  private readonly baseEnv: Record<string, string>;
  private readonly entries = new Map<string, Entry>();
  private loaded: Promise<void> | undefined;
  private readonly proc: ProcReader;
  private readonly clock: Clock;
  private readonly checkClock: Clock;
  private readonly rotateCheckMs: number;
  private readonly watchLogs: boolean;
  private readonly adoptedPollMs: number;
  /** The one timer of log checks, and when it fires (see scheduleChecks). */
  private checkTimer: { timer: Timer; dueMs: number } | null = null;
  private checking = false;
  /** The one timer of the adopted-process watcher (see watchAdopted); null when none is set. */
  private adoptedTimer: Timer | null = null;
  private adoptedPassing = false;
  private closed = false;
  private readonly strays: MarkedSignaller;
  /**
   * The ids of records loaded at start that no process carried in the start's pass over /proc: none can carry them
   * later (only such a process can start another that does), so stop() and remove() look for no strays of them.
   */
  private readonly unmarked = new Set<string>();

  constructor(opts: ProcessRuntimeOptions) {
    // Resolved: the exit file's path is in each wrapper's arguments, which a later instance compares with its own.
    this.dir = path.resolve(opts.stateDir, 'processes');
    this.logger = opts.logger;
    this.logFileBytesMax = opts.logFileBytesMax ?? limits.processLogFileBytesMax;
    this.baseEnv = opts.baseEnv ?? {
      PATH: process.env.PATH ?? defaultPath,
      HOME: process.env.HOME ?? '/',
    };
    this.proc = opts.proc ?? systemProc;
    this.strays = new MarkedSignaller(this.proc, processEnvName);
    this.clock = opts.clock ?? systemClock;
    this.checkClock = opts.clock ?? unrefClock;
    this.rotateCheckMs = opts.rotateCheckMs ?? limits.processLogCheckMsMax;
    this.watchLogs = opts.watchLogs ?? true;
    this.adoptedPollMs = opts.adoptedPollMs ?? limits.processAdoptedPollMs;
  }

  async ping(): Promise<void> {
    await this.load();
  }

  async run(spec: RunSpec): Promise<{ id: string }> {
    validateRunSpec(spec, { commandRequired: true });
    await this.load();
    for (const e of this.entries.values()) {
      if (e.record.name === spec.name) throw new RuntimeFailure('name-conflict', `the name ${spec.name} is already in use by ${e.record.id}`);
    }
    const command = spec.command ?? [];
    const id = `p-${randomBytes(8).toString('hex')}`;
    const marker: Marker = { name: spec.name, image: spec.image, labels: { ...spec.labels }, startedAt: Date.now() };
    if (spec.resources !== undefined) marker.resources = { ...spec.resources };
    if (spec.stopSignal !== undefined) marker.stopSignal = spec.stopSignal;
    const { child, exit } = await this.spawnChild(id, marker, command, spec.env ?? {});
    const pid = child.pid ?? 0;
    const record: ProcessRecord = {
      id, ...marker, command: [...command], pid, pidStartTicks: (await readProcStat(pid, this.proc))?.startTicks ?? null, state: 'running', exitCode: null,
    };
    const entry = newEntry(record);
    entry.exited = exit.then(async ({ code }) => this.markExited(entry, code ?? (await this.codeWithoutWrapper(entry))));
    this.entries.set(id, entry);
    this.startLogCheck(entry);
    await this.persist(entry);
    return { id };
  }

  private async spawnChild(id: string, marker: Marker, command: string[], env: Record<string, string>): Promise<Spawned> {
    const childEnv: Record<string, string> = { ...this.baseEnv, ...env, [processEnvName]: id };
    const file = command[0] ?? '';
    try {
      // The shell would run a missing command too (exit 127): find it first, so that run() fails as a spawn would.
      await findExecutable(file, childEnv.PATH ?? defaultPath);
    } catch (err) {
      const failure = classifyRuntimeError(err);
      throw new RuntimeFailure(failure.reason, `cannot run ${JSON.stringify(file)}: ${failure.message}`, { cause: err });
    }
    await makeDirs(this.dir);
    const log = await fs.open(this.logPath(id), 'a');
    try {
      const given = shellVars.filter((name) => childEnv[name] !== undefined).map((name) => `${name}=${childEnv[name]}`);
      // detached: its own process group (stop signals the whole group) that does not die with the worker.
      const child = spawn('/bin/sh', ['-c', wrapperScript, this.exitPath(id), markerArgument(marker), ...given, '--', ...command], {
        env: childEnv, stdio: ['ignore', log.fd, log.fd], detached: true,
      });
      child.on('error', (err) => this.logger?.warn({ err, id }, 'process error'));
      // Listen before the first await: a quick command can exit before run() gets back here.
      const exit = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      try {
        await once(child, 'spawn');
      } catch (err) {
        await removeQuietly(this.logPath(id));
        const failure = classifyRuntimeError(err);
        throw new RuntimeFailure(failure.reason, `cannot run ${JSON.stringify(file)}: ${failure.message}`, { cause: err });
      }
      child.unref();
      return { child, exit };
    } finally {
      await log.close();
    }
  }

  async wait(id: string, opts: { signal?: AbortSignal } = {}): Promise<WaitStatus> {
    const entry = await this.get(id);
    if (entry === undefined) throw new RuntimeFailure('container-not-found', `no such process: ${id}`);
    await this.untilExited(entry, opts.signal);
    const { exitCode } = entry.record;
    // The command's own writes to its log go straight to the file: when they fail with ENOSPC only the command sees
    // it (and exits 1, say). A write of ours that failed, or a disk all but full now, tells the exit was the disk's.
    const outOfSpace = exitCode === 0 || exitCode === null ? undefined : (entry.noSpace ?? (await this.diskFull()));
    return outOfSpace === undefined ? { exitCode } : { exitCode, outOfSpace };
  }

  /** Why the state dir's disk counts as full (less than processDiskFreeBytesMin free), or undefined. */
  private async diskFull(): Promise<string | undefined> {
    let stats: StatsFs;
    try {
      stats = await fs.statfs(this.dir);
    } catch {
      return undefined;
    }
    // The tasks run as the worker's user: root may write into the blocks reserved for it, others may not.
    const freeBytes = (process.getuid?.() === 0 ? stats.bfree : stats.bavail) * stats.bsize;
    if (freeBytes >= limits.processDiskFreeBytesMin) return undefined;
    return `the disk of ${this.dir} had ${freeBytes} bytes free when the process ended`;
  }

  /** Notes on the entry that a write of its file failed for lack of space (wait() reports it); other errors pass. */
  private noteNoSpace(entry: Entry, err: unknown, file: string): void {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT') entry.noSpace ??= `writing ${file} failed: ${code === 'ENOSPC' ? 'no space left on the device' : 'disk quota exceeded'} (${code})`;
  }

  async stop(id: string, timeoutMs: number, signal?: NodeJS.Signals): Promise<void> {
    const entry = await this.get(id);
    if (entry === undefined || entry.record.state === 'exited') return;
    const first = signal ?? entry.record.stopSignal ?? 'SIGTERM';
    // A stop signal of SIGKILL kills the wrapper before it writes the exit file: the 137 is this stop's.
    if (first === 'SIGKILL') entry.killed = true;
    this.signal(entry, first);
    await this.signalStrays(id, first);
    const exited = await this.exitsWithin(entry, timeoutMs);
    // Before the first SIGKILL that may reach it: the strays' pass below finds the task's own processes too, and an
    // adopted one's watcher, looking meanwhile, would find it gone without an exit file and no kill known (exit code
    // unknown, the outside tester's null after a worker restart).
    if (!exited) entry.killed = true;
    // What left the group (setsid, a daemon) has had the wrapper's time to go; what has not goes now.
    await this.signalStrays(id, 'SIGKILL');
    if (exited) return;
    this.signal(entry, 'SIGKILL');
    if (!(await this.exitsWithin(entry, killWaitMs))) {
      throw new RuntimeFailure('timeout', `process ${id} (pid ${entry.record.pid}) survived SIGKILL for ${killWaitMs} ms`);
    }
  }

  async remove(id: string): Promise<void> {
    const entry = await this.get(id);
    if (entry === undefined) return;
    if (entry.record.state === 'running') await this.stop(id, 0);
    // A command that exited leaving a process behind in another group (`setsid x &`, a daemon) leaves none once
    // removed, as a container's removal would (it would write on into a log file removed below).
    else await this.signalStrays(id, 'SIGKILL');
    this.entries.delete(id);
    this.unmarked.delete(id);
    this.stopLogCheck(entry);
    await entry.writes;
    await Promise.all([this.recordPath(id), this.logPath(id), `${this.logPath(id)}.1`, `${this.logPath(id)}.1.tmp`, this.exitPath(id)].map(removeQuietly));
  }

  async inspect(id: string): Promise<ContainerInfo | null> {
    const entry = await this.get(id);
    return entry === undefined ? null : infoFrom(entry.record);
  }

  async list(labelFilter: Record<string, string>): Promise<ContainerInfo[]> {
    await this.load();
    const matching = [...this.entries.values()].filter((e) => labelsMatch(e.record.labels, labelFilter));
    // The worker lists every second: a look the shared watcher took within adoptedPollMs stands.
    await Promise.all(matching.map((e) => this.refresh(e, this.adoptedPollMs)));
    return matching.filter((e) => this.entries.has(e.record.id)).map((e) => infoFrom(e.record));
  }

  async logs(id: string, opts: { tailLines?: number } = {}): Promise<string> {
    const entry = await this.get(id);
    if (entry === undefined) throw new RuntimeFailure('container-not-found', `no such process: ${id}`);
    const bytesMax = limits.runtimeLogBytesMax;
    // In the log's turn: between a rotation's truncate and its write of .1, the two files would show output twice or
    // out of order.
    const text = await this.inLogTurn(entry, async () => {
      const current = await readTail(this.logPath(id), bytesMax);
      const older = current.length < bytesMax ? await readTail(`${this.logPath(id)}.1`, bytesMax - current.length) : Buffer.alloc(0);
      return tailBytes(Buffer.concat([older, current]), bytesMax);
    });
    return tailLines(text, opts.tailLines ?? limits.runtimeLogTailLinesDefault);
  }

  async followLogs(id: string, opts: { tailLines?: number; signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    const entry = await this.get(id);
    if (entry === undefined) throw new RuntimeFailure('container-not-found', `no such process: ${id}`);
    const { signal } = opts;
    // Reads through one open handle, from where the tail ended: the file stays readable after remove() unlinks it
    // (a worker removes a process as soon as it has exited). A rotation moves the file's newest bytes to .1 and empties
    // it (same inode): the follower then reads what it had not read of them from .1, and the emptied file from 0
    // (followSource), each read in the log's turn so that none straddles a rotation. Each pass reads what the file
    // gained, a chunk at a time; the iteration ends after a pass that found nothing more once the process had exited
    // or was removed.
    const follow = async function* (this: ProcessRuntime): AsyncGenerator<Uint8Array> {
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(this.logPath(id), 'r');
      } catch {
        return;
      }
      const adopted = entry.exited === undefined;
      if (adopted) entry.watching++;
      try {
        const start = await this.inLogTurn(entry, () => this.followStart(entry, handle, opts.tailLines));
        let at = start.at;
        const lines = new WholeLines(limits.processLogFollowHeldLineBytesMax);
        let out = lines.push(Buffer.from(start.text));
        if (out.length > 0) yield out;
        while (!signal.aborted) {
          const over = entry.record.state === 'exited' || !this.entries.has(id);
          const next = await this.inLogTurn(entry, () => this.followRead(entry, handle, at));
          at = next.at;
          if (next.chunk !== null) {
            out = Buffer.concat([next.skipped ? lines.skip() : Buffer.alloc(0), lines.push(next.chunk)]);
            if (out.length > 0) yield out;
            continue;
          }
          // Caught up: the line being written is shown as it is so far.
          out = lines.release();
          if (out.length > 0) yield out;
          if (over) return;
          // An adopted process's exit is seen by the shared watcher (see adoptedPass), which wakes this.
          if (adopted) this.watchAdopted();
          await untilWoken(entry, pollMs, signal);
        }
      } finally {
        if (adopted) entry.watching--;
        await handle.close();
      }
    }.call(this);
    return follow;
  }

  /** The tail a follower starts with (its newest tailLines lines, across .1), and where it goes on from. */
  private async followStart(entry: Entry, handle: fs.FileHandle, tailLinesMax: number | undefined): Promise<{ text: string; at: FollowPosition }> {
    const bytesMax = limits.runtimeLogBytesMax;
    const offset = (await handle.stat()).size;
    const current = await readAt(handle, Math.max(0, offset - bytesMax), Math.min(offset, bytesMax));
    const older = current.length < bytesMax ? await readTail(`${this.logPath(entry.record.id)}.1`, bytesMax - current.length) : Buffer.alloc(0);
    const text = tailLines(tailBytes(Buffer.concat([older, current]), bytesMax), tailLinesMax ?? limits.runtimeLogTailLinesDefault);
    return { text, at: { generation: entry.rotation.count, offset } };
  }

  /**
   * A follower's next chunk (in the log's turn) and where it is after it: from .1 while it is behind a rotation, else
   * from the file; null when it has read everything there is for now.
   */
  private async followRead(entry: Entry, handle: fs.FileHandle, from: FollowPosition): Promise<{ at: FollowPosition; chunk: Buffer | null; skipped: boolean }> {
    const source = followSource(from, entry.rotation);
    let { at, skipped } = source;
    if (source.oldBytes > 0) {
      const chunk = await readRange(`${this.logPath(entry.record.id)}.1`, source.oldPosition, Math.min(source.oldBytes, followChunkBytes));
      // .1 gone (removed with the process): nothing is left of that generation.
      if (chunk.length === 0) return { at: { generation: entry.rotation.count, offset: 0 }, chunk: Buffer.alloc(0), skipped: true };
      return { at: { ...at, offset: at.offset + chunk.length }, chunk, skipped };
    }
    const size = (await handle.stat()).size;
    // Shorter than what was read without a rotation of this instance: emptied by someone else; read it from its start.
    if (size < at.offset) {
      at = { ...at, offset: 0 };
      skipped = true;
    }
    if (size === at.offset) return { at, chunk: skipped ? Buffer.alloc(0) : null, skipped };
    const chunk = await readAt(handle, at.offset, Math.min(size - at.offset, followChunkBytes));
    return { at: { ...at, offset: at.offset + chunk.length }, chunk, skipped };
  }

  /** Runs fn in the entry's log turn: after the rotations and reads of its log asked for before, before those after. */
  private inLogTurn<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
    const turn = entry.logTurn.then(fn);
    entry.logTurn = turn.then(() => undefined, () => undefined);
    return turn;
  }

  /**
   * Stops the log checks. The shared watcher of adopted processes runs only while a wait() or a follower waits on
   * one, and goes on for them.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.checkTimer?.timer.cancel();
    this.checkTimer = null;
    for (const entry of this.entries.values()) this.stopLogCheck(entry);
    await Promise.all([...this.entries.values()].map((e) => e.writes));
  }

  private recordPath(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private logPath(id: string): string {
    return path.join(this.dir, `${id}.log`);
  }

  /** Written by the wrapper shell when the command ends: its exit status, a newline. */
  private exitPath(id: string): string {
    return path.join(this.dir, `${id}.exit`);
  }

  /** The entry with its liveness checked, or undefined. */
  private async get(id: string): Promise<Entry | undefined> {
    await this.load();
    const entry = this.entries.get(id);
    if (entry !== undefined) await this.refresh(entry);
    return entry;
  }

  /** Reads every record once per instance: how a restarted worker learns what its predecessor started. */
  private load(): Promise<void> {
    this.loaded ??= this.loadRecords();
    return this.loaded;
  }

  private async loadRecords(): Promise<void> {
    await makeDirs(this.dir);
    for (const file of await fs.readdir(this.dir)) {
      // A write cut short by a crash leaves its temporary file; the record it was replacing is still whole.
      if (file.endsWith('.tmp')) await removeQuietly(path.join(this.dir, file));
      if (!file.endsWith('.json')) continue;
      const record = await readRecord(path.join(this.dir, file));
      if (record === null) {
        this.logger?.warn({ file }, 'ignoring an unreadable process record');
        continue;
      }
      if (this.entries.has(record.id)) continue;
      const entry = newEntry(record);
      this.entries.set(record.id, entry);
      if (record.state === 'running') this.startLogCheck(entry);
    }
    // The one pass over /proc of a start, after the records are read: it finds the orphans, and tells which records'
    // processes have nothing left to look for (a pass per record, with 145 records and 1,700 processes, took minutes).
    const marked = new Map<string, number[]>();
    await scanMarked(this.proc, processEnvName, (id, pid) => marked.set(id, [...(marked.get(id) ?? []), pid]));
    for (const id of this.entries.keys()) if (!marked.has(id)) this.unmarked.add(id);
    await this.adoptOrphans(marked);
  }

  /** Signals what of process `id` left its group (see MarkedSignaller); nothing to look for if unmarked at start. */
  private signalStrays(id: string, signal: NodeJS.Signals): Promise<void> {
    return this.unmarked.has(id) ? Promise.resolve() : this.strays.signal(id, signal);
  }

  /**
   * Takes back the live processes of this state dir whose records are gone (the dir was emptied while they ran), so
   * that list() reports them and the worker adopts them, as after any restart, instead of starting a second copy.
   * Adopted rather than killed: the task keeps running, as a Docker worker's container does; the wrapper writes the
   * exit file by its path and stop() signals the group by pid, so nothing else needs the lost files. Only the output
   * still goes to the log file the process was started with (moved away with the old dir): the log path becomes a
   * link to it. Off Linux there is no /proc and nothing is found. `marked`: the start's pass (id -> pids).
   */
  private async adoptOrphans(marked: ReadonlyMap<string, number[]>): Promise<void> {
    const candidates = [...marked].filter(([id]) => !this.entries.has(id)).flatMap(([, pids]) => pids);
    for (const found of await findWrappers(this.dir, this.proc, candidates)) {
      if (this.entries.has(found.id)) continue;
      const { id, pid, startTicks, marker, command } = found;
      const record: ProcessRecord = { id, ...marker, command, pid, pidStartTicks: startTicks, state: 'running', exitCode: null };
      const entry = newEntry(record);
      this.entries.set(id, entry);
      await this.persist(entry);
      const log = await fs.readlink(`/proc/${pid}/fd/1`).catch(() => null);
      if (log !== null && path.isAbsolute(log) && !log.endsWith(' (deleted)')) await fs.symlink(log, this.logPath(id)).catch(() => undefined);
      this.startLogCheck(entry);
      this.logger?.warn({ id, pid, name: marker.name, labels: marker.labels }, 'adopted a running process whose record was gone');
    }
  }

  /**
   * For an adopted process: notices that it is gone, and takes its exit code from the exit file. No file (the wrapper
   * was killed, the host restarted, a process started before the wrapper existed): unknown, unless stop() killed it.
   */
  private async refresh(entry: Entry, lookAgeMsMax = 0): Promise<void> {
    if (entry.record.state === 'exited' || entry.exited !== undefined) return;
    if (entry.checkedMs !== undefined && this.clock.monoMs() - entry.checkedMs < lookAgeMsMax) return;
    const alive = await isAlive(entry.record, this.proc);
    entry.checkedMs = this.clock.monoMs();
    if (alive) return;
    const onDisk = await readRecord(this.recordPath(entry.record.id));
    if (onDisk?.state === 'exited') {
      // Written by a runtime that saw the wrapper die without an exit file (unknown to it); this one's stop killed it.
      entry.record = onDisk.exitCode === null && entry.killed === true ? { ...onDisk, exitCode: exitCodeForSignal('SIGKILL') } : onDisk;
      this.settle(entry);
      return;
    }
    await this.markExited(entry, await this.codeWithoutWrapper(entry));
  }

  /**
   * The command's exit code when its wrapper did not exit by itself with it (a signal ended the wrapper, or it is not
   * this instance's child): what the exit file says, else 137 when stop() sent SIGKILL, else unknown (null). A
   * wrapper killed from outside the worker says nothing of the command (which it did not signal): taking its 137 as
   * the command's made the task's own permanent failure of it while the worker watched, and a retry after a restart.
   */
  private async codeWithoutWrapper(entry: Entry): Promise<number | null> {
    const exitCode = await readExitCode(this.exitPath(entry.record.id));
    return exitCode ?? (entry.killed === true ? exitCodeForSignal('SIGKILL') : null);
  }

  private async markExited(entry: Entry, exitCode: number | null): Promise<void> {
    if (entry.record.state === 'exited') return;
    // When it ended, not when this worker saw it: the wrapper wrote the exit file then (a worker that was paused sees
    // the exit late, and the agent tells a process that ended by itself from one its stop ended by this time).
    const finishedAt = (await fs.stat(this.exitPath(entry.record.id)).catch(() => null))?.mtimeMs ?? Date.now();
    // Another look may have recorded the exit meanwhile.
    if ((entry.record.state as ProcessRecord['state']) === 'exited') return;
    entry.record = { ...entry.record, state: 'exited', exitCode, finishedAt: Math.min(Math.floor(finishedAt), Date.now()) };
    if (this.entries.has(entry.record.id)) void this.persist(entry);
    this.settle(entry);
  }

  /** For an entry whose record turned exited: its log needs no more checks, and its waiters wake. */
  private settle(entry: Entry): void {
    this.stopLogCheck(entry);
    for (const wake of [...entry.waiters]) wake();
  }

  /** Sets the shared watcher's timer (see adoptedPass), unless it is set or a pass is under way (which sets it). */
  private watchAdopted(): void {
    if (this.adoptedTimer !== null || this.adoptedPassing) return;
    this.adoptedTimer = this.clock.setTimeout(() => void this.adoptedPass(), this.adoptedPollMs);
  }

  /**
   * The shared watcher of adopted processes (not children of this instance, so only /proc tells their end): one look
   * at each that someone waits on, one file at a time, which wakes the waiters of those gone; then again after
   * adoptedPollMs while any is waited on. Each look checks the pid's start time (isAlive), so a pid reused by another
   * process is not taken for ours. 145 adopted processes cost 145 reads a pass, where each polled /proc every 100 ms.
   */
  private async adoptedPass(): Promise<void> {
    this.adoptedTimer = null;
    this.adoptedPassing = true;
    try {
      for (const entry of [...this.entries.values()]) if (waitedOnAdopted(entry)) await this.refresh(entry);
    } finally {
      this.adoptedPassing = false;
    }
    if ([...this.entries.values()].some(waitedOnAdopted)) this.watchAdopted();
  }

  /** Writes are chained per entry, each writing the newest record, so the last state always lands last. */
  private persist(entry: Entry): Promise<void> {
    entry.writes = entry.writes.then(async () => {
      const file = this.recordPath(entry.record.id);
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await fs.writeFile(tmp, JSON.stringify(entry.record));
        await fs.rename(tmp, file);
      } catch (err) {
        // A write cut short by a full disk leaves its temporary file (empty, or part of the record).
        await removeQuietly(tmp).catch(() => undefined);
        this.noteNoSpace(entry, err, file);
        this.logger?.error({ err, id: entry.record.id }, 'could not write a process record');
      }
    });
    return entry.writes;
  }

  private async untilExited(entry: Entry, signal?: AbortSignal): Promise<void> {
    // A child of this instance tells its exit; an adopted process's is seen by the shared watcher (adoptedPass).
    const adopted = entry.exited === undefined;
    if (adopted) entry.watching++;
    try {
      while (entry.record.state !== 'exited') {
        if (signal?.aborted) throw new RuntimeFailure('timeout', `wait for ${entry.record.id} abandoned`, { cause: signal.reason });
        if (adopted) this.watchAdopted();
        await untilWoken(entry, null, signal);
      }
    } finally {
      if (adopted) entry.watching--;
    }
    // Whoever waited sees the exit on disk too (a fresh instance, a remove right after).
    await entry.writes;
  }

  private async exitsWithin(entry: Entry, timeoutMs: number): Promise<boolean> {
    // Monotonic: a wall-clock step must neither kill a task before its stop timeout nor let it run on past it.
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      await this.refresh(entry);
      if (entry.record.state === 'exited') return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await untilWoken(entry, entry.exited === undefined ? Math.min(pollMs, left) : left);
    }
  }

  /** Signals the process group; a process already gone (ESRCH) is not an error. */
  private signal(entry: Entry, signal: NodeJS.Signals): void {
    try {
      process.kill(-entry.record.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw classifyRuntimeError(err);
    }
  }

  /**
   * Replaces the log's .1 with data (whole: a temporary file, renamed); false when the disk has no room for it, and
   * nothing is left behind. Other failures throw.
   */
  private async writeOld(entry: Entry, file: string, data: Buffer): Promise<boolean> {
    const temp = `${file}.1.tmp`;
    try {
      await fs.writeFile(temp, data, { mode: 0o600 });
      await fs.rename(temp, `${file}.1`);
      return true;
    } catch (err) {
      await removeQuietly(temp).catch(() => undefined);
      this.noteNoSpace(entry, err, temp);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') return false;
      throw err;
    }
  }

  /** Looks at every running process's log now, rotating those past the bound: public so tests rotate at a known moment. */
  async rotateLogs(): Promise<void> {
    for (const entry of [...this.entries.values()]) if (entry.record.state === 'running') await this.rotateIfPast(entry);
  }

  /** In the log's turn, rotates the log if it is past its bound: its size before and after; null without a file. */
  private rotateIfPast(entry: Entry): Promise<{ before: number; after: number } | null> {
    return this.inLogTurn(entry, async () => {
      const file = this.logPath(entry.record.id);
      try {
        const size = (await fs.stat(file)).size;
        if (size <= this.logFileBytesMax) return { before: size, after: size };
        await this.rotate(entry, file, size);
        return { before: size, after: 0 };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger?.warn({ err, file }, 'log rotation failed');
        return null;
      }
    });
  }

  /**
   * Moves the newest logFileBytesMax of the file (from a whole line) to .1 and empties it. The process appends
   * (O_APPEND) straight to the file, so it goes on at the new end; what it writes between the last read and the
   * truncate is lost, the price of not standing between a process and its file. So the truncate follows the read at
   * once (what the file gained while it was read is read too, twice at most), and .1 is written after it, from memory:
   * a full disk then has the room the truncate freed (a log grew to 30 MB past its bound on one, rotation failing with
   * ENOSPC), and should there still be none, the older output is dropped, .1 with it (it would show an older
   * generation as the newer).
   */
  private async rotate(entry: Entry, file: string, sizeFound: number): Promise<void> {
    let tail = await readWholeLinesTail(file, sizeFound, this.logFileBytesMax);
    let size = tail.base + tail.data.length;
    // What it gained while the tail was read, unless that is more than the tail itself (a writer as fast as the disk):
    // then the file is emptied at once rather than read again while it grows on.
    const sizeNow = (await fs.stat(file)).size;
    if (sizeNow > size && sizeNow - size <= this.logFileBytesMax / 4) {
      tail = keepNewest(Buffer.concat([tail.data, await readRange(file, size, sizeNow - size)]), tail.base, this.logFileBytesMax);
      size = tail.base + tail.data.length;
    }
    await fs.truncate(file, 0);
    const count = entry.rotation.count + 1;
    if (await this.writeOld(entry, file, tail.data)) {
      entry.rotation = { count, base: tail.base, end: tail.base + tail.data.length };
      return;
    }
    entry.rotation = { count, base: size, end: size };
    await removeQuietly(`${file}.1`);
    this.logger?.warn({ file, bytes: tail.data.length }, 'log rotation dropped the older output: no room for it');
  }

  /** Starts looking at a running process's log for rotation: on a timer, and when its watch reports a change. */
  private startLogCheck(entry: Entry): void {
    if (this.closed) return;
    const check = newLogCheck(this.checkClock.monoMs(), this.rotateCheckMs);
    entry.logCheck = check;
    if (this.watchLogs) {
      try {
        const watcher = watchFile(this.logPath(entry.record.id), { persistent: false }, () => this.logChanged(entry));
        watcher.on('error', () => {
          watcher.close();
          check.watcher = null;
        });
        check.watcher = watcher;
      } catch {
        // No file, or no room for another watch (the host's inotify limits): the timer alone, at the rate's pace.
      }
    }
    // What the file holds already was written before the watch (a burst at once after the spawn, while run() read
    // /proc; a log a restarted worker finds), which no change will report: looked at as after a change.
    if (check.watcher !== null) check.dueMs = dueAfterChangeMs(check, check.lastMs, limits.processLogCheckAfterChangeMsMax);
    this.scheduleChecks();
  }

  private stopLogCheck(entry: Entry): void {
    entry.logCheck?.watcher?.close();
    delete entry.logCheck;
  }

  /**
   * The log's watch saw it change: the next look comes as soon as its spacing allows, at most
   * processLogCheckAfterChangeMsMax after the last one, so a process that starts writing fast after a quiet spell is
   * caught at once, and one that writes a line at a time costs a few looks a second.
   */
  private logChanged(entry: Entry): void {
    const check = entry.logCheck;
    if (check === undefined) return;
    const nowMs = this.checkClock.monoMs();
    check.changedMs ??= nowMs;
    // During a look at this log its due time is past and stands: checkLog brings the next look forward when it ends.
    const dueMs = dueAfterChangeMs(check, nowMs, limits.processLogCheckAfterChangeMsMax);
    if (dueMs >= check.dueMs) return;
    check.dueMs = dueMs;
    this.scheduleChecks();
  }

  /** Sets the one timer of log checks for the earliest due, unless a pass is under way (it sets it when done). */
  private scheduleChecks(): void {
    if (this.checking || this.closed) return;
    let dueMs = Infinity;
    for (const e of this.entries.values()) if (e.logCheck !== undefined) dueMs = Math.min(dueMs, e.logCheck.dueMs);
    if (this.checkTimer !== null && this.checkTimer.dueMs <= dueMs) return;
    this.checkTimer?.timer.cancel();
    this.checkTimer = null;
    if (dueMs === Infinity) return;
    const timer = this.checkClock.setTimeout(() => void this.checkDueLogs(), Math.max(0, dueMs - this.checkClock.monoMs()));
    this.checkTimer = { timer, dueMs };
  }

  /** Looks at each log that is due, one at a time, then sets the timer for the next. */
  private async checkDueLogs(): Promise<void> {
    this.checkTimer = null;
    this.checking = true;
    try {
      for (const entry of [...this.entries.values()]) {
        const check = entry.logCheck;
        if (check !== undefined && check.dueMs <= this.checkClock.monoMs()) await this.checkLog(entry, check);
      }
    } finally {
      this.checking = false;
      this.scheduleChecks();
    }
  }

  /**
   * One look at a log: rotated if past its bound; the next look is due before it can pass the bound again at the rate
   * it grew (nextCheckSpacingMs), or, with a watch, rotateCheckMs later unless a change brings it forward.
   */
  private async checkLog(entry: Entry, check: LogCheck): Promise<void> {
    // A change reported from here on may be a write the look's stat comes too early to see.
    const changedBeforeMs = check.changedMs;
    check.changedMs = null;
    const sizes = await this.rotateIfPast(entry);
    const nowMs = this.checkClock.monoMs();
    const after = sizes?.after ?? 0;
    check.spacingMs = nextCheckSpacingMs({
      grownBytes: (sizes?.before ?? 0) - check.lastSize,
      overMs: nowMs - (changedBeforeMs ?? check.lastMs),
      sizeBytes: after,
      boundBytes: this.logFileBytesMax,
      minMs: limits.processLogCheckMsMin,
      maxMs: this.rotateCheckMs,
    });
    check.lastMs = nowMs;
    check.lastSize = after;
    check.dueMs = nowMs + (check.watcher === null ? check.spacingMs : this.rotateCheckMs);
    // Changes reported during the look (logChanged left its due time as it was): forgotten, they left a burst that
    // ended during a look past the bound until the timed look. Its own truncate is one of them: a look more.
    if (check.changedMs !== null) check.dueMs = dueAfterChangeMs(check, nowMs, limits.processLogCheckAfterChangeMsMax);
  }
}

function infoFrom(r: ProcessRecord): ContainerInfo {
  const info: ContainerInfo = {
    id: r.id, name: r.name, image: r.image, labels: { ...r.labels }, state: r.state, exitCode: r.exitCode, startedAt: r.startedAt,
  };
  if (r.finishedAt !== undefined) info.finishedAt = r.finishedAt;
  return info;
}

/** A shell's convention: killed by signal N reads as exit code 128 + N (SIGTERM: 143, SIGKILL: 137). */
export function exitCodeForSignal(signal: NodeJS.Signals | null): number {
  if (signal === null) return 128;
  return 128 + (osConstants.signals[signal] ?? 0);
}

/** The marker argument's size past which it keeps only the worker's own labels (one argument holds at most 128 KiB). */
const markerArgBytesMax = 64 * 1024;

/**
 * The marker as the wrapper's argument. Linux takes at most 128 KiB in one argument (MAX_ARG_STRLEN): a task whose
 * labels are larger would not start at all. Past 64 KiB it holds only the worker's own labels (minkube.*), which is
 * what a re-adoption needs to know the task by; the adopted record then lacks the task's other labels.
 */
function markerArgument(marker: Marker): string {
  const whole = JSON.stringify(marker);
  if (whole.length <= markerArgBytesMax / 3 || Buffer.byteLength(whole) <= markerArgBytesMax) return whole;
  return JSON.stringify({ ...marker, labels: Object.fromEntries(Object.entries(marker.labels).filter(([key]) => key.startsWith('minkube.'))) });
}

/**
 * The variable every process of a task inherits (unless it clears it), set to the process's id: how a stop finds what
 * left the task's process group (`setsid`, `timeout`, a daemon), which the group's signal does not reach.
 */
export const processEnvName = 'MINKUBE_PROCESS';

/**
 * This user's live wrappers (see wrapperScript) whose exit file is in dir, among the candidates (pids the start's pass
 * found marked, see loadRecords), told by their arguments in /proc (the command never sees them, and its children do
 * not carry them); none off Linux. A wrapper started before processes were marked (MINKUBE_PROCESS) is not found.
 */
async function findWrappers(dir: string, proc: ProcReader, candidates: readonly number[]): Promise<Array<{ id: string; pid: number; startTicks: string; marker: Marker; command: string[] }>> {
  const found = [];
  for (const pid of candidates) {
    const args = (await proc.read(pid, 'cmdline'))?.toString('utf8').split('\0').slice(0, -1) ?? [];
    const [shell, flag, script, exitFile, markerText] = args;
    const dash = args.indexOf('--', 5);
    if (shell !== '/bin/sh' || flag !== '-c' || script !== wrapperScript || exitFile === undefined || dash < 0) continue;
    if (path.dirname(exitFile) !== dir || !exitFile.endsWith('.exit')) continue;
    const stat = await readProcStat(pid, proc);
    const owner = await proc.uid(pid);
    const marker = parseMarker(markerText);
    if (stat === null || stat.state === 'Z' || stat.state === 'X' || owner !== process.getuid?.() || marker === null) continue;
    found.push({ id: path.basename(exitFile, '.exit'), pid, startTicks: stat.startTicks, marker, command: args.slice(dash + 1) });
  }
  return found;
}

function parseMarker(text: string | undefined): Marker | null {
  try {
    const m = JSON.parse(text ?? '') as Partial<Marker>;
    const valid = typeof m.name === 'string' && typeof m.image === 'string' && typeof m.labels === 'object' && m.labels !== null && typeof m.startedAt === 'number';
    return valid ? (m as Marker) : null;
  } catch {
    return null;
  }
}

/** An adopted process (see Entry.exited) that runs, as far as its record says, and that someone waits on. */
function waitedOnAdopted(entry: Entry): boolean {
  return entry.watching > 0 && entry.exited === undefined && entry.record.state === 'running';
}

async function isAlive(r: ProcessRecord, proc: ProcReader): Promise<boolean> {
  if (r.pidStartTicks === null) {
    try {
      process.kill(r.pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const stat = await readProcStat(r.pid, proc);
  // Z: exited, not yet reaped by its parent. X: dead.
  return stat !== null && stat.startTicks === r.pidStartTicks && stat.state !== 'Z' && stat.state !== 'X';
}

/** The code in an exit file; null if it is missing or not whole. */
async function readExitCode(file: string): Promise<number | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
  const m = /^(\d{1,3})\n$/.exec(text);
  return m?.[1] === undefined ? null : Number(m[1]);
}

/**
 * Throws what spawn would for a command it cannot execute (ENOENT, EACCES: a code and syscall classifyRuntimeError
 * reads), looking a name without a slash up in pathList as execvp does.
 */
async function findExecutable(file: string, pathList: string): Promise<void> {
  const spawnError = (code: string): Error => Object.assign(new Error(`spawn ${file} ${code}`), { code, syscall: `spawn ${file}`, path: file });
  if (file.includes('/')) {
    const problem = await executableProblem(file);
    if (problem !== null) throw spawnError(problem);
    return;
  }
  let denied = false;
  for (const dir of pathList.split(':')) {
    const problem = await executableProblem(path.join(dir === '' ? '.' : dir, file));
    if (problem === null) return;
    if (problem === 'EACCES') denied = true;
  }
  throw spawnError(denied ? 'EACCES' : 'ENOENT');
}

/** null if file is one execve would run, else the error code it would give. */
async function executableProblem(file: string): Promise<string | null> {
  try {
    await fs.access(file, fsConstants.X_OK);
    return (await fs.stat(file)).isFile() ? null : 'EACCES';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'ENOENT';
  }
}

async function readRecord(file: string): Promise<ProcessRecord | null> {
  try {
    const r = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<ProcessRecord>;
    const valid = typeof r.id === 'string' && typeof r.pid === 'number' && typeof r.labels === 'object' && r.labels !== null;
    return valid ? (r as ProcessRecord) : null;
  } catch {
    return null;
  }
}

/** fn over the file opened for reading, then closed; empty if it does not exist. */
async function readingFile(file: string, fn: (handle: fs.FileHandle) => Promise<Buffer>): Promise<Buffer> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

/** The last bytesMax bytes of a file, without reading the rest; empty if it does not exist. */
function readTail(file: string, bytesMax: number): Promise<Buffer> {
  return readingFile(file, async (handle) => {
    const size = (await handle.stat()).size;
    return readAt(handle, Math.max(0, size - bytesMax), Math.min(size, bytesMax));
  });
}

/** Up to lengthMax bytes of an open file from position. */
async function readAt(handle: fs.FileHandle, position: number, lengthMax: number): Promise<Buffer> {
  const buf = Buffer.alloc(lengthMax);
  const { bytesRead } = await handle.read(buf, 0, lengthMax, position);
  return buf.subarray(0, bytesRead);
}

/** Up to lengthMax bytes of a file from position; empty past its end or if it does not exist. */
function readRange(file: string, position: number, lengthMax: number): Promise<Buffer> {
  return readingFile(file, (handle) => readAt(handle, position, lengthMax));
}

/**
 * Resolves when the entry's record turns exited (markExited), after ms (null: no timer), or when the signal aborts,
 * whichever comes first; it leaves nothing behind on the entry or the signal.
 */
function untilWoken(entry: Entry, ms: number | null, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      entry.waiters.delete(done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = ms === null ? undefined : setTimeout(done, ms);
    entry.waiters.add(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}
