// How often the process runtime reads /proc: a restart with many process task records on a busy host read every
// process's environment once per record (minutes), so these count the reads through an injected ProcReader.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MarkedSignaller, type ProcFile, type ProcReader } from '../../src/runtime/proc.js';
import { ProcessRuntime, processEnvName } from '../../src/runtime/process.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** Past Linux's largest pid (2^22): a signal sent to one of these reaches no real process. */
const fakePidMin = 5_000_000;

/** A /proc of `environs` (pid -> environment), counting passes and reads per pid and file. */
function countingProc(environs: Map<number, Record<string, string>>): ProcReader & { passes: number; reads: Map<string, number> } {
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
