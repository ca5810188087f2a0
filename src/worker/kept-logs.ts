// The output tails a worker keeps of tasks whose containers it removed (the last 64 KiB each), on disk beside its
// data, so `task logs` of a task that ended still answers after the worker restarts (an upgrade, a crash). Best
// effort: written whole (a temp file, renamed) but not synced, since losing a tail in a power cut loses only logs.
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../lib/make-dirs.js';

/** One finished attempt's output tail, as the worker kept it when it removed the container. */
export interface KeptLog {
  readonly taskId: string;
  readonly attempt: number;
  readonly finishedAtMs: number;
  readonly text: string;
}

/** Where the tails live: files in the worker's data directory, or memory (tests). */
export interface KeptLogStore {
  /** Every tail an earlier run kept (unreadable or foreign files are skipped). */
  load(): Promise<KeptLog[]>;
  /** Keeps a task's tail, replacing its earlier attempt's. */
  save(log: KeptLog): Promise<void>;
  /** Forgets a task's tail (none kept is fine). */
  remove(taskId: string): Promise<void>;
}

/** Task ids are made by the managers (`t` and base-32 digits); anything else is never a file name here. */
const safeTaskId = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SUFFIX = '.json';

/** The tails as files `<dir>/<taskId>.json`, readable by the worker's user alone (a task's output may hold secrets). */
export class FileKeptLogs implements KeptLogStore {
  constructor(private readonly dir: string) {}

  async load(): Promise<KeptLog[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const logs: KeptLog[] = [];
    for (const name of names) {
      if (!name.endsWith(SUFFIX)) continue;
      const log = parseKeptLog(await readFile(join(this.dir, name), 'utf8').catch(() => ''));
      if (log !== null && `${log.taskId}${SUFFIX}` === name) logs.push(log);
    }
    return logs;
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
    await unlink(join(this.dir, `${taskId}${SUFFIX}`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}

/** The tails in memory: what a test's worker "restarts" with. */
export class MemoryKeptLogs implements KeptLogStore {
  readonly logs = new Map<string, KeptLog>();

  async load(): Promise<KeptLog[]> {
    return [...this.logs.values()];
  }

  async save(log: KeptLog): Promise<void> {
    this.logs.set(log.taskId, log);
  }

  async remove(taskId: string): Promise<void> {
    this.logs.delete(taskId);
  }
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
