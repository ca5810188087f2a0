// How often the process runtime reads /proc: a restart with many process task records on a busy host read every
// process's environment once per record (minutes), so these count the reads through an injected ProcReader.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MarkedSignaller, type ProcFile, type ProcReader } from '../../src/runtime/proc.js';
import { ProcessRuntime, processEnvName } from '../../src/runtime/process.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** Past Linux's largest pid (2^22): a signal sent to one of these reaches no real process. */
const fakePidMin = 5_000_000;

/** /proc/<pid>/stat of a sleeping process started at startTicks (field 22). */
function statLine(pid: number, startTicks: string): string {
  return `${pid} (sh) S 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${startTicks} 0 0\n`;
}

/**
 * A /proc of `environs` (pid -> environment) and of `starts` (pid -> start time, for its stat file), counting passes
 * and reads per pid and file.
 */
function countingProc(environs: Map<number, Record<string, string>>, starts = new Map<number, string>()): ProcReader & { passes: number; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const proc = {
    passes: 0,
    reads,
    async pids() {
      proc.passes++;
      return [...environs.keys()];
    },
    async read(pid: number, file: ProcFile) {
      reads.set(`${pid}/${file}`, (reads.get(`${pid}/${file}`) ?? 0) + 1);
      const start = starts.get(pid);
      if (file === 'stat') return start === undefined ? null : Buffer.from(statLine(pid, start));
      const env = environs.get(pid);
      if (env === undefined || file !== 'environ') return null;
      return Buffer.from(Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''));
    },
    async uid() {
      return null;
    },
  };
  return proc;
}

describe('ProcessRuntime reads /proc once at a restart, however many records it has', () => {
  it('N records of processes that ended while no worker ran: one pass over /proc for list() and every remove()', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-procscan-'));
    dirs.push(dir);
    const processes = path.join(dir, 'processes');
    await fs.mkdir(processes);
    const recordsN = 60;
    const ids = Array.from({ length: recordsN }, (_, i) => `p-${i.toString(16).padStart(16, '0')}`);
    await Promise.all(ids.map(async (id, i) => {
      const record = { id, name: `t${i}`, image: 'host', command: ['true'], labels: { 'minkube.worker': 'w1' }, pid: fakePidMin + i, pidStartTicks: '1', state: 'running', exitCode: null, startedAt: 1 };
      await fs.writeFile(path.join(processes, `${id}.json`), JSON.stringify(record));
      await fs.writeFile(path.join(processes, `${id}.exit`), '0\n');
    }));
    // A busy host: many processes, some of another worker's tasks; none of these records' processes is left.
    const environs = new Map<number, Record<string, string>>();
    for (let i = 0; i < 500; i++) environs.set(fakePidMin + 1000 + i, i % 5 === 0 ? { [processEnvName]: `p-other${i}` } : { PATH: '/bin' });
    const proc = countingProc(environs);

    const rt = new ProcessRuntime({ stateDir: dir, proc });
    const listed = await rt.list({ 'minkube.worker': 'w1' });
    expect(listed).toHaveLength(recordsN);
    expect(listed.every((c) => c.state === 'exited' && c.exitCode === 0)).toBe(true);
    // As a worker's clean-ups go: some together, some one after another.
    await Promise.all(ids.slice(0, recordsN / 2).map((id) => rt.remove(id)));
    for (const id of ids.slice(recordsN / 2)) await rt.remove(id);
    await rt.close();

    expect(proc.passes).toBe(1);
    const reread = [...proc.reads].filter(([, n]) => n > 1);
    expect(reread).toEqual([]);
    expect(await fs.readdir(processes)).toEqual([]);
  });

  it('a record whose task left a process behind is still searched for at remove, in a shared pass', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-procscan-'));
    dirs.push(dir);
    const processes = path.join(dir, 'processes');
    await fs.mkdir(processes);
    const id = 'p-00000000000000aa';
    const record = { id, name: 'left', image: 'host', command: ['true'], labels: {}, pid: fakePidMin, pidStartTicks: '1', state: 'exited', exitCode: 0, startedAt: 1, finishedAt: 2 };
    await fs.writeFile(path.join(processes, `${id}.json`), JSON.stringify(record));
    const proc = countingProc(new Map([[fakePidMin + 7, { [processEnvName]: id }]]));
    const rt = new ProcessRuntime({ stateDir: dir, proc });
    await rt.list({});
    await rt.remove(id);
    await rt.close();
    // The start's pass, then the removal's own (a stray may have started others since).
    expect(proc.passes).toBe(2);
  });
});

describe('MarkedSignaller', () => {
  it('requests made while a pass runs share the next pass, and each is served by a pass begun after it', async () => {
    const environs = new Map<number, Record<string, string>>();
    for (let i = 0; i < 50; i++) environs.set(fakePidMin + i, { [processEnvName]: `p-${i}` });
    const proc = countingProc(environs);
    const killed: Array<[number, NodeJS.Signals]> = [];
    const signaller = new MarkedSignaller(proc, processEnvName, (pid, signal) => killed.push([pid, signal]));
    const first = signaller.signal('p-1', 'SIGTERM');
    // Asked once the first pass is under way (it reads one file at a time, so it is not over yet).
    while (proc.passes === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const later = Array.from({ length: 20 }, (_, i) => signaller.signal(`p-${i + 2}`, i === 0 ? 'SIGKILL' : 'SIGTERM'));
    const again = signaller.signal('p-2', 'SIGTERM');
    await Promise.all([first, ...later, again]);
    expect(proc.passes).toBe(2);
    expect(killed).toContainEqual([fakePidMin + 1, 'SIGTERM']);
    // SIGKILL wins over a later SIGTERM for the same process.
    expect(killed).toContainEqual([fakePidMin + 2, 'SIGKILL']);
    expect(killed).toHaveLength(21);
  });
});

describe('ProcessRuntime watches adopted processes with one timer', () => {
  it('N adopted processes waited on cost one look each per interval, and an exit (or a reused pid) is still noticed', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-procscan-'));
    dirs.push(dir);
    const processes = path.join(dir, 'processes');
    await fs.mkdir(processes);
    // Processes an earlier worker started (records say running), alive in the fake /proc: adopted, not children.
    const processesN = 40;
    const ids = Array.from({ length: processesN }, (_, i) => `p-${i.toString(16).padStart(16, '0')}`);
    const starts = new Map<number, string>();
    await Promise.all(ids.map(async (id, i) => {
      starts.set(fakePidMin + i, '777');
      const record = { id, name: `t${i}`, image: 'host', command: ['sleep', '1d'], labels: {}, pid: fakePidMin + i, pidStartTicks: '777', state: 'running', exitCode: null, startedAt: 1 };
      await fs.writeFile(path.join(processes, `${id}.json`), JSON.stringify(record));
    }));
    const proc = countingProc(new Map(), starts);
    const clock = new ManualClock();
    const pollMs = 1000;
    const rt = new ProcessRuntime({ stateDir: dir, proc, clock, adoptedPollMs: pollMs, watchLogs: false });
    expect((await rt.list({})).every((c) => c.state === 'running')).toBe(true);
    const statReads = (): number[] => ids.map((_, i) => proc.reads.get(`${fakePidMin + i}/stat`) ?? 0);
    const statReadsTotal = (): number => statReads().reduce((a, b) => a + b, 0);
    // As a restarted worker does: it waits on each of them.
    const waits = ids.map((id) => rt.wait(id));
    const before = statReads();
    const passesN = 5;
    for (let pass = 1; pass <= passesN; pass++) {
      clock.advance(pollMs);
      await waitFor(`look ${pass} at every adopted process`, () => statReadsTotal() === before.reduce((a, b) => a + b, 0) + pass * processesN);
    }
    // One look per process per pass: before, each wait read its /proc every 100 ms on its own timer.
    expect(statReads().map((n, i) => n - before[i]!)).toEqual(ids.map(() => passesN));
    // The worker's list() every second takes the watcher's recent looks as they are.
    const listed = statReadsTotal();
    await rt.list({});
    expect(statReadsTotal()).toBe(listed);

    // One exits (its wrapper wrote the exit file); another's pid now belongs to a process started later.
    starts.delete(fakePidMin);
    await fs.writeFile(path.join(processes, `${ids[0]}.exit`), '3\n');
    starts.set(fakePidMin + 1, '999');
    clock.advance(pollMs);
    expect(await waits[0]).toEqual({ exitCode: 3 });
    expect(await waits[1]).toEqual({ exitCode: null });
    expect(await rt.inspect(ids[2]!)).toMatchObject({ state: 'running' });

    // The rest end too; with nobody waiting, no timer is left to look.
    for (let i = 2; i < processesN; i++) starts.delete(fakePidMin + i);
    clock.advance(pollMs);
    await Promise.all(waits);
    await rt.close();
    expect(clock.nextDelayMs()).toBeNull();
  });
});
