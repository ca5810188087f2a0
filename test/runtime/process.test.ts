// ProcessRuntime with real host commands: the conformance suite, then records and logs under the state dir.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { queryObjects } from 'node:v8';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessRuntime, exitCodeForSignal, readProcStat } from '../../src/runtime/process.js';
import { systemProc, type ProcReader } from '../../src/runtime/proc.js';
import type { RunSpec } from '../../src/runtime/types.js';
import { sleep, waitFor } from '../support/wait.js';
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

/** p, or a failure naming what did not come within 20 s (rather than the test's timeout, naming nothing). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within 20 s`)), 20_000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Starts spec from another node process that then exits, as a worker stopped (or killed) after the start. */
function startFromGoneWorker(dir: string, spec: RunSpec): Promise<string> {
  const fixture = fileURLToPath(new URL('./fixtures/start-process.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', fixture, dir, JSON.stringify(spec)], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

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
    expect(files).toEqual([`${id}.exit`, `${id}.json`, `${id}.log`]);
    expect(await fs.readFile(path.join(dir, 'processes', `${id}.exit`), 'utf8')).toBe('0\n');
    const fresh = new ProcessRuntime({ stateDir: dir });
    expect(await fresh.inspect(id)).toMatchObject({ id, name: 'rec', image: 'img:1', state: 'exited', exitCode: 0 });
    expect(await fresh.logs(id)).toBe('kept\n');
    await fresh.remove(id);
    expect(await fs.readdir(path.join(dir, 'processes'))).toEqual([]);
    await Promise.all([rt.close(), fresh.close()]);
  });

  it('finishedAt is when the process ended, not when a busy worker saw it (its exit file\'s time)', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'late', image: 'img:1', command: ['true'], labels, resources: { cpus: 1 } });
    await waitFor('the exit file', async () => (await fs.stat(path.join(dir, 'processes', `${id}.exit`)).catch(() => null)) !== null);
    // The event loop held for 500 ms, as a paused or saturated worker's would be: the exit is seen after it.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    const seenAfterMs = Date.now();
    await rt.wait(id);
    const info = await rt.inspect(id);
    expect(info?.finishedAt).toBeDefined();
    expect(seenAfterMs - info!.finishedAt!).toBeGreaterThanOrEqual(400);
    await rt.close();
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
    // MINKUBE_PROCESS: the runtime's own, which a stop finds the task's processes by.
    expect(vars).toEqual(['A', 'HOME', 'MINKUBE_PROCESS', 'PATH']);
    delete process.env.MINKUBE_SECRET_OF_THE_WORKER;
    await rt.close();
  });

  it('the shell that records the exit code is invisible to the command: env as given, its own fds, no builtins', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir(), baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    // Names a shell sets or changes by itself reach the command as the task gave them (PWD not even the cwd).
    const env = { PWD: '/nowhere', SHLVL: '7', IFS: ',', PS4: 'x', A: 'a b' };
    const printEnv = await rt.run({ name: 'env', image: 'host', command: ['env'], env, labels });
    const fds = await rt.run({ name: 'fds', image: 'host', command: ['ls', '-l', '/proc/self/fd'], labels });
    // The shell's builtin echo would turn \n into a newline; /bin/echo does not.
    const echo = await rt.run({ name: 'echo', image: 'host', command: ['echo', 'a\\nb'], labels });
    await Promise.all([printEnv, fds, echo].map(({ id }) => rt.wait(id)));
    const lines = (await rt.logs(printEnv.id)).trim().split('\n').sort();
    expect(lines).toEqual(['A=a b', 'IFS=,', `MINKUBE_PROCESS=${printEnv.id}`, `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, 'PS4=x', 'PWD=/nowhere', 'SHLVL=7']);
    // Only stdout and stderr are the log: the shell's copy of stderr (fd 3) was not left open.
    const onLog = [...(await rt.logs(fds.id)).matchAll(/ (\d+) -> (.*)$/gm)].filter((m) => m[2]!.endsWith(`${fds.id}.log`)).map((m) => m[1]);
    expect(onLog).toEqual(['1', '2']);
    expect(await rt.logs(echo.id)).toBe('a\\nb\n');
    await rt.close();
  });

  it('waiting on a long-running process holds no more memory the longer it runs (a worker waits on each for days)', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    const { id } = await rt.run({ name: 'long', image: 'host', command: ['sleep', '60'], labels });
    // Twenty waiters for 1.5 s: the runtime once polled every 100 ms by racing the process's exit promise, which left
    // a reaction and a promise on it per poll until the process ended (600 here; 20 MB a minute for 100 long tasks).
    const abandon = new AbortController();
    const abandoned = rt.wait(id, { signal: abandon.signal }).then(() => 'ended', () => 'abandoned');
    const waits = Array.from({ length: 19 }, () => rt.wait(id));
    // queryObjects collects garbage first: what it counts is held.
    const promises = (): number => queryObjects(Promise, { format: 'count' });
    await sleep(300);
    const promisesBefore = promises();
    await sleep(1500);
    expect(promises() - promisesBefore).toBeLessThan(60);
    abandon.abort();
    expect(await abandoned).toBe('abandoned');
    await rt.stop(id, 1000);
    expect(await Promise.all(waits)).toEqual(waits.map(() => ({ exitCode: exitCodeForSignal('SIGTERM') })));
    await rt.remove(id);
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

  it('stop and remove also end what left the group (setsid, a daemon), found by MINKUBE_PROCESS in its environment', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    const pidIn = (id: string): Promise<number> => waitFor('the stray\'s pid in the log', async () => {
      const pid = Number.parseInt(await rt.logs(id), 10);
      return Number.isNaN(pid) ? undefined : pid;
    }, 2000, 20);
    const gone = (pid: number): Promise<boolean> => waitFor(`pid ${pid} gone (or a zombie)`, async () => {
      const stat = await readProcStat(pid);
      return stat === null || stat.state === 'Z';
    });
    // Stopped while running: a process in a session of its own is not reached by the group's signal.
    const stopped = await rt.run({ name: 'escape', image: 'host', command: ['sh', '-c', 'setsid sleep 301 & echo $!; wait'], labels });
    const escaped = await pidIn(stopped.id);
    expect(await fs.readFile(`/proc/${escaped}/environ`, 'utf8')).toContain(`MINKUBE_PROCESS=${stopped.id}\0`);
    await rt.stop(stopped.id, 1000);
    await gone(escaped);
    await rt.remove(stopped.id);
    // Exited by itself, leaving a daemon behind: removing the process ends it.
    const daemon = await rt.run({ name: 'daemon', image: 'host', command: ['sh', '-c', 'setsid sleep 302 & echo $!'], labels });
    const left = await pidIn(daemon.id);
    await rt.wait(daemon.id);
    expect(await readProcStat(left)).not.toBeNull();
    await rt.remove(daemon.id);
    await gone(left);
    await rt.close();
  });

  it('rotates a log file past its bound, keeping one old generation', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 500, rotateCheckMs: 60_000, watchLogs: false });
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
    // Each rotation keeps the newest 500 bytes of what it rotates, from a whole line: 125 lines of 301..600.
    const lines = (await rt.logs(id)).trimEnd().split('\n');
    expect([lines[0], lines.at(-1), lines.length]).toEqual(['476', '900', 425]);
    expect((await rt.logs(id, { tailLines: 2 })).split('\n')).toEqual(['899', '900', '']);
    await rt.remove(id);
    await rt.close();
  });

  it('a follower reads across rotations every line once, in order: the rest of .1 from where it was, then the new file from 0', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 1000, rotateCheckMs: 3_600_000, watchLogs: false });
    // Bursts of lines, each after the test says go: the rotations fall where the test puts them.
    const gate = (n: number): string => `while [ ! -e ${path.join(dir, `go${n}`)} ]; do sleep 0.01; done`;
    const script = `${gate(1)}; seq 1 100; ${gate(2)}; seq 101 300; ${gate(3)}; seq 301 400; ${gate(4)}; seq 401 650; ${gate(5)}; seq 651 700`;
    const { id } = await rt.run({ name: 'rotated', image: 'host', command: ['sh', '-c', script], labels });
    // Its start (the first ask) may come before the first burst or, on a loaded host, after it (a follow with no tail
    // lines would then start past line 100 and wait for line 101 on): the tail it starts with holds whatever of lines
    // 1 to 100 the file holds then, and it reads the rest. It reads only while asked for more.
    const follower = (await rt.followLogs(id, { tailLines: 1000, signal: new AbortController().signal }))[Symbol.asyncIterator]();
    let asked: Promise<IteratorResult<Uint8Array>> | null = follower.next();
    let read = '';
    /** Asks the follower for more until it has given `last`, then asks no more (it stays where it is). */
    const readUntil = async (last: number): Promise<void> => {
      while (!read.endsWith(`\n${last}\n`)) {
        const next = await within(asked ?? follower.next(), `line ${last} from the follower (it gave ${JSON.stringify(read.slice(-40))})`);
        asked = null;
        if (next.done === true) throw new Error(`the follow ended before ${last}: ${read.slice(-50)}`);
        read += Buffer.from(next.value).toString();
      }
    };
    const go = async (n: number, last: number): Promise<void> => {
      await fs.writeFile(path.join(dir, `go${n}`), '');
      await waitFor(`line ${last} in the log`, async () => (await rt.logs(id, { tailLines: 1 })) === `${last}\n`, 10_000, 10);
    };
    await go(1, 100);
    await readUntil(100);
    // The follower is 292 bytes in; the file grows to 1,092 and is rotated (.1: its newest 1,000 bytes, from a whole
    // line, which hold the follower's place), then it grows again past where the follower was.
    await go(2, 300);
    await rt.rotateLogs();
    await go(3, 400);
    await readUntil(400);
    // Rotated again while the follower is 400 lines in: .1 then starts past where the follower was (it never lags by
    // more than the bound here), and it reads the rest of .1, then the new file.
    await go(4, 650);
    await rt.rotateLogs();
    await go(5, 700);
    await readUntil(700);
    expect(read).toBe(Array.from({ length: 700 }, (_, i) => `${i + 1}\n`).join(''));
    await rt.wait(id);
    expect((await within(follower.next(), 'the end of the follow')).done).toBe(true);
    await rt.remove(id);
    await rt.close();
  });

  it('a follower that falls behind what the files keep skips to a line start: every line it gives is whole, none spliced from two', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 100_000, rotateCheckMs: 3_600_000, watchLogs: false });
    const gate = (n: number): string => `while [ ! -e ${path.join(dir, `go${n}`)} ]; do sleep 0.01; done`;
    // 116-byte lines: a follower's read (a multiple of 4 KiB here, at most 64 KiB) ends part-way through one.
    const lines = (from: number, to: number): string => `seq -w ${from} ${to} | sed 's/.*/proc line & ${'x'.repeat(100)}/'`;
    const { id } = await rt.run({ name: 'fast', image: 'host', command: ['sh', '-c', `${gate(1)}; ${lines(1001, 3000)}; ${gate(2)}; ${lines(3001, 3100)}`], labels });
    const follower = (await rt.followLogs(id, { tailLines: 0, signal: new AbortController().signal }))[Symbol.asyncIterator]();
    // Asked once before the burst: it gives what it read first, and reads no more until asked again.
    const first = follower.next();
    await fs.writeFile(path.join(dir, 'go1'), '');
    let read = Buffer.from((await within(first, 'the first read')).value as Uint8Array).toString();
    await waitFor('the burst in the log', async () => (await rt.logs(id, { tailLines: 1 })).startsWith('proc line 3000 '), 10_000, 10);
    // The file (232 KB) is rotated: .1 keeps its newest 100 KB, far past where the follower is.
    await rt.rotateLogs();
    await fs.writeFile(path.join(dir, 'go2'), '');
    for (;;) {
      const next = await within(follower.next(), 'more from the follower');
      if (next.done === true) break;
      read += Buffer.from(next.value).toString();
    }
    const got = read.split('\n');
    expect(got.pop()).toBe('');
    const bad = got.filter((l) => !/^proc line \d{4} x{100}$/.test(l));
    expect(bad).toEqual([]);
    const numbers = got.map((l) => Number(l.slice(10, 14)));
    expect(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!)).toBe(true);
    expect(numbers.at(-1)).toBe(3100);
    expect(numbers.length).toBeLessThan(2100); // some were skipped
    await rt.remove(id);
    await rt.close();
  });

  it('keeps .1 within the bound when a fast writer put far more in the file between two checks', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 4096, rotateCheckMs: 60_000, watchLogs: false });
    const { id } = await rt.run({ name: 'flood', image: 'host', command: ['sh', '-c', 'seq 1 100000; sleep 30'], labels });
    await waitFor('the whole flood in the log', async () => (await rt.logs(id, { tailLines: 1 })) === '100000\n', 10_000, 20);
    await rt.rotateLogs();
    const old = await fs.readFile(path.join(dir, 'processes', `${id}.log.1`), 'utf8');
    expect(old.length).toBeLessThanOrEqual(4096);
    expect(old.startsWith('\n')).toBe(false);
    expect(old.split('\n').at(-2)).toBe('100000');
    expect(Number(old.split('\n')[0])).toBe(100000 - old.trimEnd().split('\n').length + 1);
    await rt.remove(id);
    await rt.close();
  });

  it('rotates a log that grows past its bound when its watch sees it grow, not at the next timed look', async () => {
    const dir = await stateDir();
    // The timed look an hour away: only the watch can bring one.
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: 64 * 1024, rotateCheckMs: 3_600_000 });
    const { id } = await rt.run({ name: 'burst', image: 'host', command: ['sh', '-c', 'seq 1 100000; exec sleep 600'], labels });
    const log = path.join(dir, 'processes', `${id}.log`);
    await waitFor('the burst rotated, its log back within the bound', async () => {
      const [now, old] = await Promise.all([fs.stat(log), fs.stat(`${log}.1`).catch(() => null)]);
      return old !== null && now.size <= 64 * 1024 && (await rt.logs(id, { tailLines: 1 })) === '100000\n';
    }, 20_000, 20);
    await rt.remove(id);
    await rt.close();
  });

  it('a writer as fast as it can (yes) keeps its log files far below what it writes between two timed looks: measured', async () => {
    const dir = await stateDir();
    const boundBytes = 8 * 1024 * 1024;
    const rt = new ProcessRuntime({ stateDir: dir, logFileBytesMax: boundBytes });
    const writtenBytes = 512 * 1024 * 1024;
    const { id } = await rt.run({ name: 'yes', image: 'host', command: ['sh', '-c', `yes | head -c ${writtenBytes}`], labels });
    const log = path.join(dir, 'processes', `${id}.log`);
    const sizeOf = (file: string): Promise<number> => fs.stat(file).then((st) => st.size, () => 0);
    let peakBytes = 0;
    let exited = false;
    const startedMs = performance.now();
    const done = rt.wait(id).then((status) => {
      exited = true;
      return status;
    });
    while (!exited) {
      peakBytes = Math.max(peakBytes, (await sizeOf(log)) + (await sizeOf(`${log}.1`)));
      await sleep(2);
    }
    expect(await done).toEqual({ exitCode: 0 });
    // What it wrote in 2 s at the rate of this run: what a look every 2 s (as before) let the file reach, several
    // hundred MB. Looked at as it grows, the file passes the bound only by what yes writes until the next look (20 ms
    // apart while it grows fast, more on a busy host): a ratio of one run, not a time.
    const perTimedLookBytes = (writtenBytes / (performance.now() - startedMs)) * 2000;
    console.log(`yes wrote ${writtenBytes} bytes, ${Math.round(perTimedLookBytes)} per 2 s; its log and .1 held at most ${peakBytes} together (bound ${boundBytes} each)`);
    // Measured at 0.1 to 0.4 of it on a loaded 2-core host; a look every 2 s let it reach all of it.
    expect(peakBytes).toBeLessThan(Math.min(writtenBytes, perTimedLookBytes) * 0.75);
    expect(await sizeOf(`${log}.1`)).toBeLessThanOrEqual(boundBytes);
    await rt.remove(id);
    await rt.close();
  });

  it('a restarted worker\'s runtime reports the real exit code of an adopted process that ends after the restart', async () => {
    const dir = await stateDir();
    const go = path.join(dir, 'go');
    const gated = (end: string): RunSpec => ({
      name: `gated-${end}`, image: 'host', labels,
      command: ['sh', '-c', `echo ready; while [ ! -e ${go} ]; do sleep 0.01; done; ${end}`],
    });
    const three = await startFromGoneWorker(dir, gated('exit 3'));
    const killed = await startFromGoneWorker(dir, gated('kill -KILL $$'));
    const fresh = new ProcessRuntime({ stateDir: dir });
    const found = await fresh.list(labels);
    expect(found.map((c) => [c.id, c.state]).sort()).toEqual([[three, 'running'], [killed, 'running']].sort());
    const waits = Promise.all([three, killed].map((id) => fresh.wait(id)));
    await fs.writeFile(go, '');
    expect(await waits).toEqual([{ exitCode: 3 }, { exitCode: exitCodeForSignal('SIGKILL') }]);
    expect(await fresh.inspect(three)).toMatchObject({ state: 'exited', exitCode: 3 });
    // The same from yet another instance, which reads the record the first one wrote.
    const third = new ProcessRuntime({ stateDir: dir });
    expect(await third.inspect(three)).toMatchObject({ state: 'exited', exitCode: 3 });
    await fresh.remove(three);
    expect((await fs.readdir(path.join(dir, 'processes'))).filter((f) => f.startsWith(three))).toEqual([]);
    await Promise.all([fresh.close(), third.close()]);
  });

  it('an adopted process stopped by the restarted worker reads as killed by its signal', async () => {
    const dir = await stateDir();
    const sleeper = await startFromGoneWorker(dir, { name: 'sleeper', image: 'host', labels, command: ['sh', '-c', 'echo ready; exec sleep 30'] });
    const stubborn = await startFromGoneWorker(dir, {
      name: 'stubborn', image: 'host', labels, command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
    });
    const fresh = new ProcessRuntime({ stateDir: dir });
    for (const id of [sleeper, stubborn]) await waitFor(`${id} ready`, async () => (await fresh.logs(id)).includes('ready'), 10_000, 20);
    await Promise.all([fresh.stop(sleeper, 5000), fresh.stop(stubborn, 300)]);
    expect(await fresh.inspect(sleeper)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGTERM') });
    expect(await fresh.inspect(stubborn)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGKILL') });
    await fresh.close();
  });

  it('an adopted process its stop has to SIGKILL reads as killed even when it is looked at while the kill is under way', async () => {
    const dir = await stateDir();
    const stubborn = await startFromGoneWorker(dir, { name: 'stubborn-race', image: 'host', labels, command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done'] });
    // A pid no process has, listed last in /proc while armed: the pass that SIGKILLs the task's processes (the stop's
    // second, after its SIGTERM pass) waits there until the test has looked at the task, as the adopted-process
    // watcher may at any time.
    const fakePid = 999_999_999;
    let armed = false;
    let passes = 0;
    let reached: () => void = () => undefined;
    const atGate = new Promise<void>((r) => (reached = r));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const proc: ProcReader = {
      pids: async () => [...(await systemProc.pids()), ...(armed ? [fakePid] : [])],
      read: async (pid, file) => {
        if (pid !== fakePid) return systemProc.read(pid, file);
        if (++passes === 2) {
          reached();
          await gate;
        }
        return null;
      },
      uid: (pid) => (pid === fakePid ? Promise.resolve(process.getuid?.() ?? 0) : systemProc.uid(pid)),
    };
    const fresh = new ProcessRuntime({ stateDir: dir, proc });
    await waitFor(`${stubborn} ready`, async () => (await fresh.logs(stubborn)).includes('ready'), 10_000, 20);
    armed = true;
    const stopped = fresh.stop(stubborn, 300);
    await atGate;
    // The task's processes were SIGKILLed by this pass: looked at now, it is gone, with no exit file.
    const pid = (JSON.parse(await fs.readFile(path.join(dir, 'processes', `${stubborn}.json`), 'utf8')) as { pid: number }).pid;
    await waitFor('the task gone', async () => {
      const st = await readProcStat(pid);
      return st === null || st.state === 'Z';
    }, 10_000, 20);
    expect(await fresh.inspect(stubborn)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGKILL') });
    release();
    await stopped;
    expect(await fresh.inspect(stubborn)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGKILL') });
    await fresh.close();
  });

  it('a process that ended while no worker ran reads as exited with its real exit code', async () => {
    const dir = await stateDir();
    const three = await startFromGoneWorker(dir, { name: 'three', image: 'host', labels, command: ['sh', '-c', 'exit 3'] });
    const termed = await startFromGoneWorker(dir, { name: 'termed', image: 'host', labels, command: ['sh', '-c', 'kill -TERM $$; sleep 30'] });
    const exitFiles = [three, termed].map((id) => path.join(dir, 'processes', `${id}.exit`));
    await waitFor('both exit files', async () => (await Promise.all(exitFiles.map((f) => fs.stat(f).then(() => true, () => false)))).every(Boolean));
    const fresh = new ProcessRuntime({ stateDir: dir });
    expect(await fresh.inspect(three)).toMatchObject({ state: 'exited', exitCode: 3 });
    expect(await fresh.wait(termed)).toEqual({ exitCode: exitCodeForSignal('SIGTERM') });
    await fresh.close();
  });

  it('its wrapper sh killed with SIGKILL from outside while the runtime watches: exit code unknown, not 137; remove ends the command', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'wrapped', image: 'host', command: ['sh', '-c', 'echo $$; exec sleep 303'], labels });
    const command = await waitFor('the command\'s pid in the log', async () => {
      const pid = Number.parseInt(await rt.logs(id), 10);
      return Number.isNaN(pid) ? undefined : pid;
    }, 5000, 20);
    // What the outside tester did: `kill -9 <pid from processes/<id>.json>`, the wrapper alone.
    const { pid } = JSON.parse(await fs.readFile(path.join(dir, 'processes', `${id}.json`), 'utf8')) as { pid: number };
    expect(pid).not.toBe(command);
    process.kill(pid, 'SIGKILL');
    // Before, the wrapper's own death by SIGKILL was read as the command's: 137, a permanent failure of the task.
    expect(await within(rt.wait(id), 'exit')).toEqual({ exitCode: null });
    expect(await rt.inspect(id)).toMatchObject({ state: 'exited', exitCode: null });
    // The command was never signalled and runs on; removing the process ends it, as a retry elsewhere needs.
    expect((await readProcStat(command))?.state).toMatch(/^[^Z]$/);
    await rt.remove(id);
    await waitFor('the command gone (or a zombie)', async () => {
      const stat = await readProcStat(command);
      return stat === null || stat.state === 'Z';
    });
    await rt.close();
  });

  it('a stop whose first signal is SIGKILL still reads as killed (137): the wrapper dies with the command, the kill is the stop\'s', async () => {
    const rt = new ProcessRuntime({ stateDir: await stateDir() });
    const { id } = await rt.run({ name: 'killed', image: 'host', command: ['sleep', '304'], labels, stopSignal: 'SIGKILL' });
    await rt.stop(id, 1000);
    expect(await within(rt.wait(id), 'exit')).toEqual({ exitCode: exitCodeForSignal('SIGKILL') });
    await rt.remove(id);
    await rt.close();
  });

  it('a process that ended while no runtime watched it, and left no exit file, reads as exited with an unknown exit code', async () => {
    const dir = await stateDir();
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'orphan', image: 'host', command: ['sleep', '30'], labels });
    // What a dead worker leaves behind on a host that restarted: a "running" record for a process that is gone, and
    // no exit file (the process died with the host, or its wrapper was killed).
    const recordFile = path.join(dir, 'processes', `${id}.json`);
    const record = JSON.parse(await fs.readFile(recordFile, 'utf8')) as { pid: number };
    await rt.stop(id, 1000);
    await rt.close();
    await fs.writeFile(recordFile, JSON.stringify({ ...record, state: 'running', exitCode: null }));
    await fs.rm(path.join(dir, 'processes', `${id}.exit`), { force: true });
    const fresh = new ProcessRuntime({ stateDir: dir });
    expect(await fresh.inspect(id)).toMatchObject({ state: 'exited', exitCode: null });
    expect(await fresh.wait(id)).toEqual({ exitCode: null });
    await fresh.close();
  });
});

describe('ProcessRuntime over an emptied state dir', () => {
  const labels = { 'minkube.test': '1' };

  /** The pid a process record names (read before its dir is emptied). */
  async function pidOf(dir: string, id: string): Promise<number> {
    return (JSON.parse(await fs.readFile(path.join(dir, 'processes', `${id}.json`), 'utf8')) as { pid: number }).pid;
  }

  async function alive(pid: number): Promise<boolean> {
    const stat = await readProcStat(pid);
    return stat !== null && stat.state !== 'Z';
  }

  /** Whatever happens in the test, no process it started outlives it. */
  function killGroup(pid: number): void {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }

  it.runIf(process.platform === 'linux')('a new runtime adopts the live processes marked with its state dir, and only those', async () => {
    const [a, b] = [await stateDir(), await stateDir()];
    const go = path.join(await stateDir(), 'go');
    const spec = (task: string): RunSpec => ({
      name: `orphan-${task}`, image: 'img:1', labels: { ...labels, 'minkube.task': task }, stopSignal: 'SIGUSR1',
      command: ['sh', '-c', `echo before; while [ ! -e ${go} ]; do sleep 0.01; done; echo after; exec sleep 30`],
    });
    // Each from a worker that is then gone; the processes outlive it.
    const inA = await startFromGoneWorker(a, spec('ta'));
    const inB = await startFromGoneWorker(b, spec('tb'));
    const pids = [await pidOf(a, inA), await pidOf(b, inB)] as const;
    try {
      await waitFor('both have written', async () => (await Promise.all([[a, inA], [b, inB]].map(([dir, id]) =>
        fs.readFile(path.join(dir!, 'processes', `${id}.log`), 'utf8').catch(() => '')))).every((text) => text === 'before\n'));
      // The tester's case: the worker's data directory moved aside (its files stay there, still open), or removed.
      dirs.push(`${a}.old`);
      await fs.rename(a, `${a}.old`);
      await fs.rm(b, { recursive: true, force: true });

      const rtA = new ProcessRuntime({ stateDir: a });
      expect(await rtA.list(labels)).toEqual([expect.objectContaining({
        id: inA, name: 'orphan-ta', image: 'img:1', labels: { ...labels, 'minkube.task': 'ta' }, state: 'running', exitCode: null,
      })]);
      // Its record is written again, so the next instance finds it the ordinary way; its log is the file it writes to.
      expect(await new ProcessRuntime({ stateDir: a }).inspect(inA)).toMatchObject({ id: inA, state: 'running' });
      expect(await rtA.logs(inA)).toBe('before\n');
      // b's process was neither reported nor touched by a's runtime.
      expect(await alive(pids[1])).toBe(true);

      const rtB = new ProcessRuntime({ stateDir: b });
      expect((await rtB.list({})).map((c) => [c.id, c.state])).toEqual([[inB, 'running']]);
      // Its log file is gone with its dir: no output, but no error either.
      expect(await rtB.logs(inB)).toBe('');

      await fs.writeFile(go, '');
      await waitFor('a\'s output after the adoption', async () => (await rtA.logs(inA)) === 'before\nafter\n');
      // The stop signal came back with the record: SIGUSR1 ends the sleep (a SIGTERM would read as 143).
      await Promise.all([rtA.stop(inA, 5000), rtB.stop(inB, 5000)]);
      expect(await rtA.inspect(inA)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGUSR1') });
      expect(await rtB.inspect(inB)).toMatchObject({ state: 'exited', exitCode: exitCodeForSignal('SIGUSR1') });
      await waitFor('both processes gone', async () => !(await alive(pids[0])) && !(await alive(pids[1])));
      await rtA.remove(inA);
      await rtB.remove(inB);
      expect(await fs.readdir(path.join(a, 'processes'))).toEqual([]);
      await Promise.all([rtA.close(), rtB.close()]);
    } finally {
      pids.forEach(killGroup);
    }
  });
});

describe('ProcessRuntime, labels larger than one argument holds', () => {
  it.runIf(process.platform === 'linux')('starts a task whose labels are over 128 KiB, and re-adopts it by the worker\'s own labels', async () => {
    const dir = await stateDir();
    // Two values of 60,000 two-byte characters: 240 KB of labels, past what one argument may hold (128 KiB).
    const big = { 'note-a': '\u00e9'.repeat(60_000), 'note-b': '\u00e8'.repeat(60_000) };
    const own = { 'minkube.task': 'tbig', 'minkube.attempt': '1' };
    const rt = new ProcessRuntime({ stateDir: dir });
    const { id } = await rt.run({ name: 'big-labels', image: 'img:1', labels: { ...own, ...big }, command: ['sleep', '30'] });
    const pid = (JSON.parse(await fs.readFile(path.join(dir, 'processes', `${id}.json`), 'utf8')) as { pid: number }).pid;
    try {
      expect(await rt.inspect(id)).toMatchObject({ state: 'running', labels: { ...own, ...big } });
      await rt.close();
      // Its record gone, the process is found again by its marker, which kept only the worker's own labels.
      await fs.rm(path.join(dir, 'processes'), { recursive: true, force: true });
      const fresh = new ProcessRuntime({ stateDir: dir });
      expect(await fresh.list({ 'minkube.task': 'tbig' })).toEqual([expect.objectContaining({ id, name: 'big-labels', labels: own, state: 'running' })]);
      await fresh.stop(id, 5000);
      await fresh.remove(id);
      await fresh.close();
    } finally {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  });
});

describe('exitCodeForSignal', () => {
  it('reads a signal as 128 + its number, like a shell', () => {
    expect(exitCodeForSignal('SIGTERM')).toBe(143);
    expect(exitCodeForSignal('SIGKILL')).toBe(137);
  });
});
