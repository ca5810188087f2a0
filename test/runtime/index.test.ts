// createRuntime: explicit choices, and 'auto' falling back to processes with a warning when Docker does not answer.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/runtime/index.js';
import { dockerAvailable } from '../support/docker.js';

const stateDir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-runtime-index-'));
afterAll(async () => {
  await fs.rm(stateDir, { recursive: true, force: true });
});

function capturingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('createRuntime', () => {
  it("gives the runtime asked for; 'docker' with no Docker answering refuses to start, naming the endpoint", async () => {
    const { logger } = capturingLogger();
    const processes = await createRuntime('process', { stateDir, logger });
    expect(processes.kind).toBe('process');
    await processes.close();
    // The Docker e2e files start workers whose runtime is docker against a real engine.
    await expect(createRuntime('docker', { stateDir, logger, docker: { socketPath: '/nonexistent.sock' } })).rejects.toMatchObject({
      code: 'RUNTIME_ERROR',
      message: expect.stringMatching(/^Docker is not reachable at unix:\/\/\/nonexistent\.sock: /),
    });
  });

  it("'auto' falls back to processes, with a warning naming the endpoint, when Docker does not answer", async () => {
    const { logger, lines } = capturingLogger();
    const rt = await createRuntime('auto', { stateDir, logger, docker: { socketPath: '/nonexistent/docker.sock' } });
    expect(rt.kind).toBe('process');
    const warning = lines.find((l) => l.level === 40);
    expect(warning?.msg).toBe(
      'Docker is not reachable at unix:///nonexistent/docker.sock; falling back to the process runtime',
    );
    await rt.close();
  });

  it("'auto' treats a malformed DOCKER_HOST as no Docker", async () => {
    const { logger, lines } = capturingLogger();
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = 'tcp://[not-a-host';
    try {
      const rt = await createRuntime('auto', { stateDir, logger });
      expect(rt.kind).toBe('process');
      expect(lines.find((l) => l.level === 40)?.msg).toContain('Docker is not reachable at tcp://[not-a-host');
      await rt.close();
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });

  it("'auto' picks Docker when it answers", async () => {
    const { logger } = capturingLogger();
    const rt = await createRuntime('auto', { stateDir, logger });
    expect(rt.kind).toBe((await dockerAvailable()) ? 'docker' : 'process');
    await rt.close();
  });
});
