// ProcessRuntime with real host commands: the conformance suite, then records and logs under the state dir.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessRuntime, exitCodeForSignal, readProcStat } from '../../src/runtime/process.js';
import { waitFor } from '../support/wait.js';
import { expectFailure, runRuntimeConformance } from './conformance.js';

const dirs: string[] = [];
async function stateDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-process-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

runRuntimeConformance('process', async () => {
  const dir = await stateDir();
  const runtime = new ProcessRuntime({ stateDir: dir });
  return {
    runtime,
    fresh: async () => new ProcessRuntime({ stateDir: dir }),
    image: 'host',
    labels: { 'minkube.test': '1' },
    cleanup: () => runtime.close(),
  };
});

describe('ProcessRuntime specifics', () => {
  const labels = { 'minkube.test': '1' };

  it('keeps a record and a log file per process, and remove deletes them', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'rec', image: 'img:1', command: ['echo', 'kept'], labels, resources: { cpus: 1 } });
    await rt.wait(id);
    const files = (await fs.readdir(path.join(dir, 'processes'))).sort();
    expect(files).toEqual([`${id}.json`, `${id}.log`]);
    const fresh = new ProcessRuntime({ stateDir: dir });
    expect(await fresh.inspect(id)).toMatchObject({ id, name: 'rec', image: 'img:1', state: 'exited', exitCode: 0 });
    expect(await fresh.logs(id)).toBe('kept\n');
    await fresh.remove(id);
    expect(await fs.readdir(path.join(dir, 'processes'))).toEqual([]);
    await Promise.all([rt.close(), fresh.close()]);
  });

  it('a file that is not executable is a permanent command-not-found', async () => {
    const dir = await stateDir();
    const file = path.join(dir, 'not-executable.sh');
    await fs.writeFile(file, 'echo hi\n', { mode: 0o644 });
    const rt = new ProcessRuntime({ stateDir: dir });
    await expectFailure(rt.run({ name: 'x', image: 'host', command: [file], labels }), 'command-not-found', 'permanent');
    expect(await rt.list({})).toEqual([]);
    await rt.close();
  });

  it('a spec without a command is a permanent invalid-spec; a second process with a name in use is a name-conflict', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    await expectFailure(rt.run({ name: 'x', image: 'host', labels }), 'invalid-spec', 'permanent');
    const { id } = await rt.run({ name: 'dup', image: 'host', command: ['true'], labels });
    await expectFailure(rt.run({ name: 'dup', image: 'host', command: ['true'], labels }), 'name-conflict', 'permanent');
    await rt.remove(id);
    await rt.close();
  });

  it('env is merged onto a minimal environment, not the worker’s', async () => {
    process.env.MINKUBE_SECRET_OF_THE_WORKER = 'leak';
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    const { id } = await rt.run({ name: 'env', image: 'host', command: ['env'], env: { A: '1' }, labels });
    await rt.wait(id);
    const vars = (await rt.logs(id)).trim().split('\n').map((l) => l.split('=')[0]).sort();
    expect(vars).toEqual(['A', 'HOME', 'PATH']);
    delete process.env.MINKUBE_SECRET_OF_THE_WORKER;
    await rt.close();
  });

  it('stop kills the whole process group, not only the direct child', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    // The shell waits on a background sleep; SIGTERM to the shell alone would leave the sleep behind.
    const { id } = await rt.run({ name: 'group', image: 'host', command: ['sh', '-c', 'sleep 30 & echo $!; wait'], labels });
    const grandchild = await waitFor('the background sleep\'s pid in the log', async () => {
      const pid = Number.parseInt(await rt.logs(id), 10);
      return Number.isNaN(pid) ? undefined : pid;
    }, 1000, 20);
    expect(await readProcStat(grandchild)).not.toBeNull();
    await rt.stop(id, 1000);
    await waitFor('the background sleep gone (or a zombie)', async () => {
      const stat = await readProcStat(grandchild);
      return stat === null || stat.state === 'Z';
    });
    await rt.remove(id);
    await rt.close();
  });

  it('rotates a log file past its bound, keeping one old generation', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 500, rotateCheckMs: 60_000 });
    // Three bursts of 300 lines (about 1 KB each), each after the test says go, so rotations fall between bursts.
    const gate = (n: number): string => `while [ ! -e ${path.join(dir, `go${n}`)} ]; do sleep 0.01; done`;
    const script = `seq 1 300; ${gate(1)}; seq 301 600; ${gate(2)}; seq 601 900; sleep 30`;
    const { id } = await rt.run({ name: 'chatty', image: 'host', command: ['sh', '-c', script], labels });
    const until = (text: string): Promise<boolean> => waitFor(`${JSON.stringify(text)} in the log`, async () => (await rt.logs(id)).includes(text), 5000, 10);
    await until('\n300\n');
    await rt.rotateLogs();
    await fs.writeFile(path.join(dir, 'go1'), '');
    await until('\n600\n');
    await rt.rotateLogs();
    await fs.writeFile(path.join(dir, 'go2'), '');
    await until('\n900\n');
    const lines = (await rt.logs(id)).trimEnd().split('\n');
    expect([lines[0], lines.at(-1), lines.length]).toEqual(['301', '900', 600]);
    expect((await rt.logs(id, { tailLines: 2 })).split('\n')).toEqual(['899', '900', '']);
    await rt.remove(id);
    await rt.close();
  });

  it('a process that ended while no runtime watched it reads as exited with an unknown exit code', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'orphan', image: 'host', command: ['sleep', '30'], labels });
    // What a dead worker leaves behind: a "running" record for a process that is gone.
    const recordFile = path.join(dir, 'processes', `${id}.json`);
    const record = JSON.parse(await fs.readFile(recordFile, 'utf8')) as { pid: number };
    await rt.stop(id, 1000);
    await rt.close();
    await fs.writeFile(recordFile, JSON.stringify({ ...record, state: 'running', exitCode: null }));
    const fresh = new ProcessRuntime({ stateDir: dir });
    expect(await fresh.inspect(id)).toMatchObject({ state: 'exited', exitCode: null });
    expect(await fresh.wait(id)).toEqual({ exitCode: null });
    await fresh.close();
  });
});

describe('exitCodeForSignal', () => {
  it('reads a signal as 128 + its number, like a shell', () => {
    expect(exitCodeForSignal('SIGTERM')).toBe(143);
    expect(exitCodeForSignal('SIGKILL')).toBe(137);
  });
});
