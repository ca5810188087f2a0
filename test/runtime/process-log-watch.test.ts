// A process log's watch and the looks it brings: what the file gained where no change could be reported to a look
// (before the watch started; while that log was being looked at) is looked at within processLogCheckAfterChangeMsMax,
// not left past the bound until the timed look. The timed look here is an hour away: only the watch can bring one.
import { watch } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ProcessRuntime } from '../../src/runtime/process.js';
import { systemProc, type ProcReader } from '../../src/runtime/proc.js';
import { waitFor } from '../support/wait.js';

/** A hook run by fs.stat of `file` once, after the real stat, before the runtime sees its (then stale) answer. */
const statHook = vi.hoisted(() => ({ file: null as string | null, run: async (): Promise<void> => undefined }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const stat = async (...args: Parameters<typeof real.stat>): Promise<unknown> => {
    const result = await real.stat(...args);
    if (statHook.file !== null && args[0] === statHook.file) {
      statHook.file = null;
      await statHook.run();
    }
    return result;
  };
  return { ...real, stat, default: { ...real, stat } };
});

const dirs: string[] = [];
async function stateDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-logwatch-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

const labels = { 'minkube.test': 'log-watch' };
const boundBytes = 64 * 1024;
/** `seq 1 100000`: 588,895 bytes, far past the bound. */
const burstBytes = 588_895;

async function sizeOf(file: string): Promise<number> {
  return fs.stat(file).then((st) => st.size, () => -1);
}

/** The log rotated: .1 written, the file back within the bound. */
function rotated(log: string): Promise<boolean> {
  return waitFor('the log rotated, back within its bound', async () => (await sizeOf(`${log}.1`)) > 0 && (await sizeOf(log)) <= boundBytes, 20_000, 20);
}

describe('ProcessRuntime log watch', () => {
  it.runIf(process.platform === 'linux')('rotates a burst written before the log\'s watch started (while run() read /proc), with no change after it', async () => {
    const dir = await stateDir();
    let held = false;
    // run() reads the new process's /proc stat before it watches the log: held until the burst is all in the file, as
    // on a loaded host where the command wrote it all before the worker got back to run().
    const proc: ProcReader = {
      ...systemProc,
      async read(pid, file) {
        if (held && file === 'stat') {
          held = false;
          await waitFor('the burst in the log', async () => {
            const logs = (await fs.readdir(path.join(dir, 'processes'))).filter((f) => f.endsWith('.log'));
            return logs.length === 1 && (await sizeOf(path.join(dir, 'processes', logs[0]!))) === burstBytes;
          }, 20_000, 10);
        }
        return systemProc.read(pid, file);
      },
    };
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: boundBytes, rotateCheckMs: 3_600_000, proc });
    await rt.ping();
    held = true;
    const { id } = await rt.run({ name: 'early-burst', image: 'host', command: ['sh', '-c', 'seq 1 100000; exec sleep 600'], labels });
    const log = path.join(dir, 'processes', `${id}.log`);
    expect(await rotated(log)).toBe(true);
    expect(await rt.logs(id, { tailLines: 1 })).toBe('100000\n');
    await rt.remove(id);
    await rt.close();
  });

  it.runIf(process.platform === 'linux')('a restarted worker\'s runtime rotates a log it finds past its bound, with no change after its start', async () => {
    const dir = await stateDir();
    const before = new ProcessRuntime({ stateDir: dir, logFileBytesMax: boundBytes, rotateCheckMs: 3_600_000, watchLogs: false });
    const { id } = await before.run({ name: 'grown', image: 'host', command: ['sh', '-c', 'seq 1 100000; exec sleep 600'], labels });
    const log = path.join(dir, 'processes', `${id}.log`);
    await waitFor('the burst in the log', async () => (await sizeOf(log)) === burstBytes, 20_000, 10);
    await before.close();
    const after = new ProcessRuntime({ stateDir: dir, logFileBytesMax: boundBytes, rotateCheckMs: 3_600_000 });
    await after.ping();
    expect(await rotated(log)).toBe(true);
    await after.remove(id);
    await after.close();
  });

  it.runIf(process.platform === 'linux')('a write its watch reports while the log is being looked at brings another look', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: boundBytes, rotateCheckMs: 3_600_000 });
    const { id } = await rt.run({ name: 'quiet', image: 'host', command: ['sleep', '600'], labels });
    const log = path.join(dir, 'processes', `${id}.log`);
    // A watch of the test's own on the file: its report of the burst comes with the runtime's (one inotify event, its
    // watchers called in turn, the runtime's first), so the runtime has heard of the burst before its look goes on.
    let heard: (() => void) | null = null;
    const ours = watch(log, { persistent: false }, () => heard?.());
    const burstHeard = new Promise<void>((resolve) => {
      heard = resolve;
    });
    // The next look's stat has read the file's size when the burst comes, past the bound, and is the last write.
    statHook.run = async () => {
      await fs.appendFile(log, Buffer.alloc(burstBytes, 'y\n'));
      await burstHeard;
    };
    statHook.file = log;
    // One line: a change the watch reports, which brings that look within processLogCheckAfterChangeMsMax.
    await fs.appendFile(log, 'one line\n');
    await waitFor('the look at the one line', () => statHook.file === null, 20_000, 10);
    expect(await rotated(log)).toBe(true);
    ours.close();
    await rt.remove(id);
    await rt.close();
  });
});
