// ProcessRuntime: tasks as plain processes, for hosts without Docker. Each process gets a JSON record, a log file and
// (once it ends) an exit file under the state dir, and runs detached with its output going straight to that file, so
// it outlives a worker restart and the next worker re-adopts it with list(), even when its record was lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import { constants as fsConstants, type StatsFs } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { limits } from '../lib/limits.js';
import { makeDirs } from '../lib/make-dirs.js';
import { classifyRuntimeError } from './classify.js';
import { MarkedSignaller, readProcStat, scanMarked, systemProc, type ProcReader } from './proc.js';
import { labelsMatch, tailBytes, tailLines, validateRunSpec } from './spec.js';
import { RuntimeFailure, type ContainerInfo, type ContainerRuntime, type ExitStatus as WaitStatus, type RunSpec } from './types.js';

export interface ProcessRuntimeOptions {
  stateDir: string;
  logger?: Logger;
  /** How often running processes' log files are checked for rotation. */
  rotateCheckMs?: number;
  logFileBytesMax?: number;
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

const pollMs = 100;
/** The most a follower reads of a log file at once. */
const followChunkBytes = 64 * 1024;
const killWaitMs = 5000;

export class ProcessRuntime implements ContainerRuntime {
  readonly kind = 'process' as const;
  private readonly dir: string;
  private readonly logger: Logger | undefined;
  private readonly logFileBytesMax: number;
  private readonly baseEnv: Record<string, string>;
  private readonly entries = new Map<string, Entry>();
  private loaded: Promise<void> | undefined;
  private readonly rotateTimer: NodeJS.Timeout;
  private readonly proc: ProcReader;
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
    this.rotateTimer = setInterval(() => void this.rotateLogs(), opts.rotateCheckMs ?? 2000);
    this.rotateTimer.unref();
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
    const entry: Entry = { record, waiters: new Set(), writes: Promise.resolve() };
    entry.exited = exit.then(({ code, signal }) => this.markExited(entry, code ?? exitCodeForSignal(signal)));
    this.entries.set(id, entry);
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
    this.signal(entry, first);
    await this.signalStrays(id, first);
    const exited = await this.exitsWithin(entry, timeoutMs);
    // What left the group (setsid, a daemon) has had the wrapper's time to go; what has not goes now.
    await this.signalStrays(id, 'SIGKILL');
    if (exited) return;
    entry.killed = true;
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
    await Promise.all(matching.map((e) => this.refresh(e)));
    return matching.filter((e) => this.entries.has(e.record.id)).map((e) => infoFrom(e.record));
  }

  async logs(id: string, opts: { tailLines?: number } = {}): Promise<string> {
    const entry = await this.get(id);
    if (entry === undefined) throw new RuntimeFailure('container-not-found', `no such process: ${id}`);
    const bytesMax = limits.runtimeLogBytesMax;
    const current = await readTail(this.logPath(id), bytesMax);
    const older = current.length < bytesMax ? await readTail(`${this.logPath(id)}.1`, bytesMax - current.length) : Buffer.alloc(0);
    const text = tailBytes(Buffer.concat([older, current]), bytesMax);
    return tailLines(text, opts.tailLines ?? limits.runtimeLogTailLinesDefault);
  }

  async followLogs(id: string, opts: { tailLines?: number; signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    const entry = await this.get(id);
    if (entry === undefined) throw new RuntimeFailure('container-not-found', `no such process: ${id}`);
    const file = this.logPath(id);
    const { signal } = opts;
    // Reads through one open handle, from where the tail ended: the file stays readable after remove() unlinks it
    // (a worker removes a process as soon as it has exited), and a rotation (rotateLogs copies the file to .1 and
    // empties it, same inode) shows as a size below what was read. Each pass reads what the file gained, a chunk at
    // a time; the iteration ends after a pass that found nothing more once the process had exited or was removed.
    const follow = async function* (this: ProcessRuntime): AsyncGenerator<Uint8Array> {
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(file, 'r');
      } catch {
        return;
      }
      try {
        const bytesMax = limits.runtimeLogBytesMax;
        let offset = (await handle.stat()).size;
        const current = await readAt(handle, Math.max(0, offset - bytesMax), Math.min(offset, bytesMax));
        const older = current.length < bytesMax ? await readTail(`${file}.1`, bytesMax - current.length) : Buffer.alloc(0);
        const first = tailLines(tailBytes(Buffer.concat([older, current]), bytesMax), opts.tailLines ?? limits.runtimeLogTailLinesDefault);
        if (first !== '') yield Buffer.from(first);
        while (!signal.aborted) {
          if (this.entries.has(id)) await this.refresh(entry);
          const over = entry.record.state === 'exited' || !this.entries.has(id);
          const size = (await handle.stat()).size;
          if (size < offset) {
            const rest = await readRange(`${file}.1`, offset, followChunkBytes);
            if (rest.length > 0) yield rest;
            offset = rest.length === followChunkBytes ? offset + rest.length : 0;
            continue;
          }
          if (size > offset) {
            const chunk = await readAt(handle, offset, Math.min(size - offset, followChunkBytes));
            offset += chunk.length;
            if (chunk.length > 0) yield chunk;
            continue;
          }
          if (over) return;
          await sleepUnless(pollMs, signal);
        }
      } finally {
        await handle.close();
      }
    }.call(this);
    return follow;
  }

  async close(): Promise<void> {
    clearInterval(this.rotateTimer);
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
      if (!this.entries.has(record.id)) this.entries.set(record.id, { record, waiters: new Set(), writes: Promise.resolve() });
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
      const entry: Entry = { record, waiters: new Set(), writes: Promise.resolve() };
      this.entries.set(id, entry);
      await this.persist(entry);
      const log = await fs.readlink(`/proc/${pid}/fd/1`).catch(() => null);
      if (log !== null && path.isAbsolute(log) && !log.endsWith(' (deleted)')) await fs.symlink(log, this.logPath(id)).catch(() => undefined);
      this.logger?.warn({ id, pid, name: marker.name, labels: marker.labels }, 'adopted a running process whose record was gone');
    }
  }

  /**
   * For an adopted process: notices that it is gone, and takes its exit code from the exit file. No file (the wrapper
   * was killed, the host restarted, a process started before the wrapper existed): unknown, unless stop() killed it.
   */
  private async refresh(entry: Entry): Promise<void> {
    if (entry.record.state === 'exited' || entry.exited !== undefined) return;
    if (await isAlive(entry.record, this.proc)) return;
    const onDisk = await readRecord(this.recordPath(entry.record.id));
    if (onDisk?.state === 'exited') {
      entry.record = onDisk;
      return;
    }
    const exitCode = await readExitCode(this.exitPath(entry.record.id));
    this.markExited(entry, exitCode ?? (entry.killed === true ? exitCodeForSignal('SIGKILL') : null));
  }

  private markExited(entry: Entry, exitCode: number | null): void {
    if (entry.record.state === 'exited') return;
    entry.record = { ...entry.record, state: 'exited', exitCode, finishedAt: Date.now() };
    if (this.entries.has(entry.record.id)) void this.persist(entry);
    for (const wake of [...entry.waiters]) wake();
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
    while (entry.record.state !== 'exited') {
      if (signal?.aborted) throw new RuntimeFailure('timeout', `wait for ${entry.record.id} abandoned`, { cause: signal.reason });
      // A child of this instance tells its exit; an adopted process is looked at in /proc every pollMs.
      await untilWoken(entry, entry.exited === undefined ? pollMs : null, signal);
      await this.refresh(entry);
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

  /** Runs on a timer (rotateCheckMs); public so tests can rotate at a known moment. */
  async rotateLogs(): Promise<void> {
    for (const entry of this.entries.values()) {
      if (entry.record.state !== 'running') continue;
      const file = this.logPath(entry.record.id);
      try {
        const size = (await fs.stat(file)).size;
        if (size <= this.logFileBytesMax) continue;
        // Only the newest logFileBytesMax go to .1: a fast writer can put far more in the file between two checks
        // (70 MB in one tester's run), and the whole of it went to .1. The child appends (O_APPEND), so after the
        // truncate it writes at the new end; what it writes between the read and the truncate is lost: the price of
        // not standing between the process and its file.
        const tail = await readWholeLinesTail(file, size, this.logFileBytesMax);
        if (!(await this.writeOld(entry, file, tail))) {
          // A full disk has no room for a copy beside the file (a log grew to 30 MB past the bound that way): the
          // file is emptied first, which frees more than the tail needs, then the tail goes to .1.
          await fs.truncate(file, 0);
          if (!(await this.writeOld(entry, file, tail))) this.logger?.warn({ file, bytes: tail.length }, 'log rotation dropped the older output: no room for it');
          continue;
        }
        await fs.truncate(file, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger?.warn({ err, file }, 'log rotation failed');
      }
    }
  }
}

/** The last `bytes` of the first `size` bytes of `from`, from the first whole line in them. */
async function readWholeLinesTail(from: string, size: number, bytes: number): Promise<Buffer> {
  const start = Math.max(0, size - bytes);
  // One byte more before the tail, when there is one: whether the tail starts a line.
  const before = start > 0 ? 1 : 0;
  const source = await fs.open(from, 'r');
  let data: Buffer;
  try {
    data = Buffer.alloc(size - start + before);
    const { bytesRead } = await source.read(data, 0, data.length, start - before);
    data = data.subarray(0, bytesRead);
  } finally {
    await source.close();
  }
  if (before === 1) {
    const cut = data[0] === 0x0a ? 0 : data.indexOf(0x0a, 1);
    data = cut < 0 ? data.subarray(1) : data.subarray(cut + 1);
  }
  return data;
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

/** Sleeps ms, or less if the signal aborts first. */
function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}
