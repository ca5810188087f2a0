// The output tails a worker keeps of tasks whose containers it removed (the last 64 KiB each), on disk beside its
// data, so `task logs` of a task that ended still answers after the worker restarts (an upgrade, a crash). Best
// effort: written whole (a temp file, renamed) but not synced, since losing a tail in a power cut loses only logs.
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../lib/make-dirs.js';

/** One finished attempt's output tail, as the worker kept it when it removed the container. */
export interface KeptLog {
  readonly taskId: string;
  readonly attempt: number;
  readonly finishedAtMs: number;
  readonly text: string;
}

/** A kept tail as found at start: what it records, or null when it records nothing usable (damaged, cut short). */
export interface KeptLogFile {
  readonly taskId: string;
  readonly log: KeptLog | null;
  /** When it was last written (wall ms): its task ended no later, so a damaged one is due for deletion from it. */
  readonly writtenAtMs: number;
}

/** Where the tails live: files in the worker's data directory, or memory (tests). */
export interface KeptLogStore {
  /** The task ids of every tail kept (damaged ones and a write cut short included; foreign names never). */
  list(): Promise<string[]>;
  /** One listed tail; null when it is gone by now. */
  read(taskId: string): Promise<KeptLogFile | null>;
  /** Keeps a task's tail, replacing its earlier attempt's. */
  save(log: KeptLog): Promise<void>;
  /** Forgets a task's tail, and a write of it cut short (none kept is fine). */
  remove(taskId: string): Promise<void>;
}

/** Task ids are made by the managers (`t` and base-32 digits); anything else is never a file name here. */
const safeTaskId = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SUFFIX = '.json';

/** The tails as files `<dir>/<taskId>.json`, readable by the worker's user alone (a task's output may hold secrets). */
export class FileKeptLogs implements KeptLogStore {
  constructor(private readonly dir: string) {}

  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const ids = new Set<string>();
    for (const name of names) {
      const id = taskIdOfName(name);
      if (id !== null) ids.add(id);
    }
    return [...ids];
  }

  async read(taskId: string): Promise<KeptLogFile | null> {
    if (!safeTaskId.test(taskId)) return null;
    const path = join(this.dir, `${taskId}${SUFFIX}`);
    // A temporary file alone: a write a crash cut short (the rename never came), which nothing else would remove.
    for (const p of [path, `${path}.tmp`]) {
      const st = await stat(p).catch(() => null);
      if (st === null || !st.isFile()) continue;
      const log = p === path ? parseKeptLog(await readFile(p, 'utf8').catch(() => '')) : null;
      return { taskId, log: log !== null && log.taskId === taskId ? log : null, writtenAtMs: st.mtimeMs };
    }
    return null;
  }

  async save(log: KeptLog): Promise<void> {
    if (!safeTaskId.test(log.taskId)) return;
    await makeDirs(this.dir, 0o700);
    const path = join(this.dir, `${log.taskId}${SUFFIX}`);
    try {
      await writeFile(`${path}.tmp`, JSON.stringify(log), { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    } catch (err) {
      // A write a full disk cut short leaves the temporary file, which nothing would read or remove.
      await unlink(`${path}.tmp`).catch(() => undefined);
      throw err;
    }
  }

  async remove(taskId: string): Promise<void> {
    if (!safeTaskId.test(taskId)) return;
    const path = join(this.dir, `${taskId}${SUFFIX}`);
    for (const p of [path, `${path}.tmp`]) {
      await unlink(p).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}

/** The tails in memory: what a test's worker "restarts" with. */
export class MemoryKeptLogs implements KeptLogStore {
  readonly logs = new Map<string, KeptLog>();

  async list(): Promise<string[]> {
    return [...this.logs.keys()];
  }

  async read(taskId: string): Promise<KeptLogFile | null> {
    const log = this.logs.get(taskId);
    return log === undefined ? null : { taskId, log, writtenAtMs: log.finishedAtMs };
  }

  async save(log: KeptLog): Promise<void> {
    this.logs.set(log.taskId, log);
  }

  async remove(taskId: string): Promise<void> {
    this.logs.delete(taskId);
  }
}

/** `<taskId>.json`, or `<taskId>.json.tmp` (a write cut short): the task id; any other name is not a kept tail. */
function taskIdOfName(name: string): string | null {
  const base = name.endsWith(`${SUFFIX}.tmp`) ? name.slice(0, -`${SUFFIX}.tmp`.length) : name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : null;
  return base !== null && safeTaskId.test(base) ? base : null;
}

function parseKeptLog(text: string): KeptLog | null {
  try {
    const v = JSON.parse(text) as Partial<KeptLog>;
    if (typeof v.taskId !== 'string' || !safeTaskId.test(v.taskId)) return null;
    if (typeof v.attempt !== 'number' || typeof v.finishedAtMs !== 'number' || typeof v.text !== 'string') return null;
    return { taskId: v.taskId, attempt: v.attempt, finishedAtMs: v.finishedAtMs, text: v.text };
  } catch {
    return null;
  }
}
