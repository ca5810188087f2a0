// MemoryRuntime: the conformance suite (through a tiny emulator of the suite's commands), simulated time, and
// injected failures.
import { describe, expect, it } from 'vitest';
import { MemoryHost, MemoryRuntime, type MemoryBehaviour } from '../../src/runtime/memory.js';
import type { RunSpec } from '../../src/runtime/types.js';
import { expectFailure, runRuntimeConformance } from './conformance.js';
import { ManualClock } from '../support/manual-clock.js';

/** Just enough of echo, true, false, sleep and `sh -c 'echo ...; exit N'` for the conformance suite. */
function emulate(spec: RunSpec): Partial<MemoryBehaviour> {
  const [cmd, ...args] = spec.command ?? [];
  switch (cmd) {
    case 'echo':
      return { durationMs: 0, logs: `${args.join(' ')}\n` };
    case 'true':
      return { durationMs: 0 };
    case 'false':
      return { durationMs: 0, exitCode: 1 };
    case 'sleep':
      return { durationMs: Number(args[0]) * 1000 };
    case 'sh':
      return args[0] === '-c' ? script(args[1] ?? '', spec.env ?? {}) : { runFailure: 'invalid-spec' };
    case undefined:
    default:
      return { runFailure: 'command-not-found' };
  }
}

function script(text: string, env: Record<string, string>): Partial<MemoryBehaviour> {
  let logs = '';
  let atMs = 0;
  const laterOutput: { afterMs: number; text: string }[] = [];
  const write = (line: string): void => {
    if (atMs === 0) logs += line;
    else laterOutput.push({ afterMs: atMs, text: line });
  };
  for (const statement of text.split(';').map((s) => s.trim())) {
    const exit = /^exit (\d+)$/.exec(statement);
    if (exit) return { durationMs: atMs, logs, laterOutput, exitCode: Number(exit[1]) };
    const sleep = /^sleep (\d+(?:\.\d+)?)$/.exec(statement);
    if (sleep) {
      atMs += Number(sleep[1]) * 1000;
      continue;
    }
    const echo = /^echo "?([^">]*)"?( >&2)?$/.exec(statement);
    if (!echo) return { runFailure: 'invalid-spec' };
    write(`${(echo[1] ?? '').replace(/\$(\w+)/g, (_, name: string) => env[name] ?? '')}\n`);
  }
  return { durationMs: atMs, logs, laterOutput };
}

runRuntimeConformance('memory', async () => {
  const host = new MemoryHost();
  return {
    runtime: new MemoryRuntime({ host, behave: emulate, engine: 'memory:conformance' }),
    fresh: async () => new MemoryRuntime({ host, behave: emulate, engine: 'memory:conformance' }),
    image: 'memory',
    labels: {},
    cleanup: async () => {},
  };
});


describe('MemoryRuntime specifics', () => {
  const spec = (name: string): RunSpec => ({ name, image: 'i', command: ['x'], labels: { app: 'a' } });

  it('containers run for their duration on the injected clock', async () => {
    const clock = new ManualClock();
    const rt = new MemoryRuntime({ clock, durationMsDefault: 1000, exitCodeDefault: 7 });
    const { id } = await rt.run(spec('a'));
    clock.advance(999);
    expect((await rt.inspect(id))?.state).toBe('running');
    const waited = rt.wait(id);
    clock.advance(1);
    expect(await waited).toEqual({ exitCode: 7 });
    expect(await rt.inspect(id)).toMatchObject({ state: 'exited', exitCode: 7, startedAt: 0, finishedAt: 1000 });
  });

  it('runs until stopped when it has no duration, and exits 143 on stop', async () => {
    const rt = new MemoryRuntime({ clock: new ManualClock() });
    const { id } = await rt.run(spec('b'));
    const waited = rt.wait(id);
    await rt.stop(id, 10_000);
    expect(await waited).toEqual({ exitCode: 143 });
  });

  it('injected failures hit the next call of that operation, once', async () => {
    const rt = new MemoryRuntime();
    rt.failNext('run', 'out-of-space');
    await expectFailure(rt.run(spec('c')), 'out-of-space', 'transient');
    const { id } = await rt.run(spec('c'));
    expect(id).toMatch(/^m-/);
    expect(rt.calls.run).toBe(2);
  });

  it('an unreachable runtime fails every call as transient daemon-unreachable', async () => {
    const rt = new MemoryRuntime();
    rt.setUnreachable(true);
    await expectFailure(rt.ping(), 'daemon-unreachable', 'transient');
    await expectFailure(rt.list({}), 'daemon-unreachable', 'transient');
    rt.setUnreachable(false);
    await rt.ping();
  });

  it('starts thousands of containers quickly (for the placement benchmark)', async () => {
    const rt = new MemoryRuntime({ clock: new ManualClock() });
    const t0 = performance.now();
    for (let i = 0; i < 5000; i++) await rt.run({ ...spec(`n${i}`), labels: { i: String(i % 10) } });
    expect(await rt.list({ i: '3' })).toHaveLength(500);
    expect(performance.now() - t0).toBeLessThan(20_000); // loose: catches a quadratic list, not a slow machine
  });
});
