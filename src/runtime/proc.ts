// What the process runtime reads of /proc, behind one small interface (so a test can count the reads), and the pass
// over /proc that finds a task's processes by the MINKUBE_PROCESS=<id> each of them inherits.
import * as fs from 'node:fs/promises';

/** The files of /proc/<pid> the runtime reads. */
export type ProcFile = 'environ' | 'cmdline' | 'stat';

export interface ProcReader {
  /** The pids in /proc now; none where there is no /proc. */
  pids(): Promise<number[]>;
  /** /proc/<pid>/<file> whole; null when it cannot be read (the process is gone, or another user's). */
  read(pid: number, file: ProcFile): Promise<Buffer | null>;
  /** The uid owning the process; null when it is gone. */
  uid(pid: number): Promise<number | null>;
}

export const systemProc: ProcReader = {
  async pids() {
    try {
      return (await fs.readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
    } catch {
      return [];
    }
  },
  read: (pid, file) => fs.readFile(`/proc/${pid}/${file}`).catch(() => null),
  uid: (pid) => fs.stat(`/proc/${pid}`).then((s) => s.uid, () => null),
};

/** The process state letter and start time from /proc/<pid>/stat; null if there is no such process. */
export async function readProcStat(pid: number, proc: ProcReader = systemProc): Promise<{ state: string; startTicks: string } | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const text = (await proc.read(pid, 'stat'))?.toString('utf8');
  if (text === undefined) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTicks = fields[19];
  return state === undefined || startTicks === undefined ? null : { state, startTicks };
}

/** The value of `name` in an environ file's NUL-separated NAME=value list; null if it has none. */
export function environValue(environ: Buffer, name: string): string | null {
  const all = Buffer.concat([Buffer.of(0), environ]);
  const key = Buffer.from(`\0${name}=`);
  const at = all.indexOf(key);
  if (at < 0) return null;
  const from = at + key.length;
  const end = all.indexOf(0, from);
  return all.toString('utf8', from, end < 0 ? all.length : end);
}

/**
 * One pass over /proc: visit(value, pid) for every readable process whose environment holds `name`, as it is found
 * (a signal sent then reaches the pid just read, not one reused since). One file at a time (a pass per caller, all at
 * once, ran out of file descriptors), and each pid's environ read once. Another user's environ is not readable
 * (EACCES): never ours.
 */
export async function scanMarked(proc: ProcReader, name: string, visit: (value: string, pid: number) => void): Promise<void> {
  for (const pid of await proc.pids()) {
    const environ = await proc.read(pid, 'environ');
    const value = environ === null ? null : environValue(environ, name);
    if (value !== null) visit(value, pid);
  }
}

/**
 * Signals the processes marked with given values (see scanMarked). Requests share passes: those made while a pass runs
 * wait for the next one, which serves all of them, so a hundred tasks stopped or removed at once, or one after the
 * other, cost one or two passes rather than one each (145 removals at a restart read /proc 145 times: minutes).
 */
export class MarkedSignaller {
  /** The requests the next pass serves: value -> signal (SIGKILL wins). */
  private queued: { readonly signals: Map<string, NodeJS.Signals>; readonly done: Promise<void> } | null = null;
  private passing: Promise<void> = Promise.resolve();

  constructor(
    private readonly proc: ProcReader,
    private readonly name: string,
    private readonly kill: (pid: number, signal: NodeJS.Signals) => void = (pid, signal) => process.kill(pid, signal),
  ) {}

  /** Resolves once a pass that began after this call has signalled every process marked `value`; the gone are skipped. */
  signal(value: string, signal: NodeJS.Signals): Promise<void> {
    if (this.queued === null) {
      const signals = new Map<string, NodeJS.Signals>();
      // After the pass under way, and after this turn of the event loop: the requests made together share a pass.
      const done = this.passing.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => {
        this.queued = null;
        return this.pass(signals);
      });
      this.passing = done.catch(() => undefined);
      this.queued = { signals, done };
    }
    if (this.queued.signals.get(value) !== 'SIGKILL') this.queued.signals.set(value, signal);
    return this.queued.done;
  }

  private async pass(signals: ReadonlyMap<string, NodeJS.Signals>): Promise<void> {
    await scanMarked(this.proc, this.name, (value, pid) => {
      const signal = signals.get(value);
      if (signal === undefined) return;
      try {
        this.kill(pid, signal);
      } catch {
        // gone meanwhile
      }
    });
  }
}
