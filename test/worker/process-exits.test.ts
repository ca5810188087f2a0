// How the worker agent reports the end of a process task (the process runtime, real host commands): its own exit
// code as the process's (not a "container"'s), and, when the wrapper sh that records the exit code is killed with
// SIGKILL from outside while the worker watches, an unknown exit code: a transient failure the managers retry, as
// README says and as a worker that was down meanwhile reports it. Before, the wrapper's own 137 was taken as the
// command's: a permanent failure, "the container exited with code 137", though the command was never signalled.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Assignment } from '../../src/contracts/worker.js';
import { ProcessRuntime, readProcStat } from '../../src/runtime/process.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
const agents: WorkerAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
});

async function setup(): Promise<{ agent: WorkerAgent; runtime: ProcessRuntime; dir: string }> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-process-exits-'));
  dirs.push(dir);
  const runtime = new ProcessRuntime({ stateDir: dir });
  const agent = new WorkerAgent({ workerId: 'w1', runtime, logger, stopTimeoutMs: 1000 });
  agents.push(agent);
  return { agent, runtime, dir };
}

const task = (taskId: string, command: string[]): Assignment => ({ taskId, attempt: 1, term: 1, desiredState: 'run', spec: { image: 'host', command } });

describe('a process task ends', () => {
  it('by its own exit code: a permanent failure that names the process', async () => {
    const { agent } = await setup();
    await agent.assign(task('t3', ['sh', '-c', 'exit 3']));
    await waitFor('t3 failed', () => agent.get('t3').state === 'failed', 20_000);
    expect(agent.get('t3')).toMatchObject({ exitCode: 3, error: { class: 'permanent', message: 'the process exited with code 3' } });
  });

  it('its wrapper sh SIGKILLed from outside while the worker watches: exit code unknown, a transient failure; the command is ended', async () => {
    const { agent, runtime, dir } = await setup();
    const started = await agent.assign(task('tk', ['sh', '-c', 'echo $$; exec sleep 306']));
    expect(started.state).toBe('running');
    const id = started.containerId!;
    const { pid: wrapper } = JSON.parse(await fs.readFile(path.join(dir, 'processes', `${id}.json`), 'utf8')) as { pid: number };
    const command = await waitFor('the command\'s pid in its log', async () => {
      const pid = Number.parseInt(await runtime.logs(id), 10);
      return Number.isNaN(pid) ? undefined : pid;
    }, 20_000, 20);
    expect(command).not.toBe(wrapper);
    process.kill(wrapper, 'SIGKILL');
    await waitFor('tk failed', () => agent.get('tk').state === 'failed', 20_000);
    const status = agent.get('tk');
    expect(status.exitCode).toBeNull();
    expect(status.error).toEqual({
      class: 'transient',
      message: 'the process ended without leaving its exit code (its wrapper shell was killed from outside the worker, or the host restarted); its exit code is unknown',
    });
    // The command, never signalled, does not run on beside the retry: removing the process ended it.
    await waitFor('the command gone (or a zombie)', async () => {
      const stat = await readProcStat(command);
      return stat === null || stat.state === 'Z';
    }, 20_000);
  });
});
