// A process task on a full disk: its output cannot be written, and its attempt must read as the host's transient
// out-of-space failure, not as the task's own exit code. A 1 MiB tmpfs is the full disk (root only; unmounted after).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessRuntime } from '../../src/runtime/process.js';
import { exitOutcome } from '../../src/worker/task-entry.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const mounted: string[] = [];

afterEach(async () => {
  for (const dir of mounted.splice(0)) {
    await run('umount', [dir]).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** A directory on a 1 MiB tmpfs; null when this host cannot mount one (not root, no permission). */
async function tinyDisk(): Promise<string | null> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-full-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  } catch {
    await fs.rm(dir, { recursive: true, force: true });
    return null;
  }
  mounted.push(dir);
  return dir;
}

describe('ProcessRuntime on a full disk', () => {
  it.runIf(process.platform === 'linux' && process.getuid?.() === 0)('a process whose output the disk cannot hold exits out of space, naming the disk', async (ctx) => {
    const dir = await tinyDisk();
    if (dir === null) return ctx.skip();
    const rt = new ProcessRuntime({ stateDir: dir });
    try {
      // head fails its write (ENOSPC) and exits 1: before, the worker reported "the container exited with code 1".
      const { id } = await rt.run({ name: 'filler', image: 'host', command: ['head', '-c', '4000000', '/dev/zero'], labels: {} });
      const status = await rt.wait(id);
      expect(status.exitCode).not.toBe(0);
      expect(status.outOfSpace).toContain(path.join(dir, 'processes'));
      await rt.remove(id);
      // What a full disk cut short leaves no temporary file behind.
      expect((await fs.readdir(path.join(dir, 'processes'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    } finally {
      await rt.close();
    }
  });

  it.runIf(process.platform === 'linux' && process.getuid?.() === 0)('rotates a log on a disk with no room for the copy, keeping the newest output and no temporary file', async (ctx) => {
    const dir = await tinyDisk();
    if (dir === null) return ctx.skip();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 128 * 1024, rotateCheckMs: 3_600_000, watchLogs: false });
    try {
      // About 590 KB of lines, then it waits: the log is past its bound and holds still.
      const { id } = await rt.run({ name: 'talker', image: 'host', command: ['sh', '-c', 'seq 1 100000; exec sleep 600'], labels: {} });
      const log = path.join(dir, 'processes', `${id}.log`);
      await waitFor('the lines in the log', async () => (await fs.readFile(log, 'utf8')).endsWith('\n100000\n'), 60_000, 50);
      // The rest of the disk taken: no room for a 128 KiB copy beside the log.
      await fs.writeFile(path.join(dir, 'filler'), Buffer.alloc(1024 * 1024)).catch(() => undefined);
      const disk = await fs.statfs(dir);
      expect(disk.bfree * disk.bsize).toBeLessThan(128 * 1024);
      await rt.rotateLogs();
      expect((await fs.stat(log)).size).toBe(0);
      const old = await fs.readFile(`${log}.1`, 'utf8');
      expect(old.endsWith('\n100000\n')).toBe(true);
      expect(old.length).toBeLessThanOrEqual(128 * 1024);
      expect((await fs.readdir(path.join(dir, 'processes'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      await rt.remove(id);
    } finally {
      await rt.close();
    }
  });

  it('a process that fails on a disk with room is the task\'s own failure', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-room-'));
    const rt = new ProcessRuntime({ stateDir: dir });
    try {
      const { id } = await rt.run({ name: 'fails', image: 'host', command: ['sh', '-c', 'exit 3'], labels: {} });
      expect(await rt.wait(id)).toEqual({ exitCode: 3 });
    } finally {
      await rt.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('exitOutcome', () => {
  it('an exit the runtime saw out of space is a transient failure without an exit code (so the managers retry it with backoff)', () => {
    expect(exitOutcome(1, false, null, 'writing /data/p-1.json failed: no space left on the device (ENOSPC)')).toEqual({
      state: 'failed',
      error: { class: 'transient', message: 'out of disk space: writing /data/p-1.json failed: no space left on the device (ENOSPC) (the container exited with code 1)' },
      exitCode: null,
    });
    expect(exitOutcome(1, false)).toEqual({ state: 'failed', error: { class: 'permanent', message: 'the container exited with code 1' }, exitCode: 1 });
    // A stop asked for is a stop, whatever the disk.
    expect(exitOutcome(143, true, null, 'full')).toEqual({ state: 'stopped', error: null, exitCode: 143 });
  });
});
