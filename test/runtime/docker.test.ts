// DockerRuntime against a real engine (image minkube-busybox:latest): the conformance suite (without and with a
// network sandbox), then what only Docker does: pulling, resource limits, labels, network mode, the network sandbox.
// Skipped without Docker, failed in CI (describeDocker).
import Docker from 'dockerode';
import { pino, type Logger } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime, consumePullProgress, demuxDockerLogs, demuxDockerStream, sandboxLabel } from '../../src/runtime/docker.js';
import { pauseImage } from '../../src/runtime/pause-image.js';
import { describeDocker, removeLabelled, testImage, testLabels } from '../support/docker.js';
import { expectFailure, runRuntimeConformance } from './conformance.js';
import { Readable, Writable } from 'node:stream';

const labels = testLabels();
/** Sandboxes carry no test labels (only minkube.sandbox): each is removed by its name. */
const sandboxName = (use: string): string => `minkube-sandbox-test-${labels['minkube.test.run']}-${use}`;

async function removeSandbox(name: string): Promise<void> {
  await new DockerRuntime().remove(name);
}

describeDocker('DockerRuntime', () => {
  afterAll(async () => {
    await removeLabelled(labels);
  });

  // Each conformance suite labels its containers on its own: the two suites run at the same time (describe.concurrent
  // siblings), and one's clean-up by label must not remove the other's containers mid-test (CI once saw a container
  // gone between list and stop).
  const plainLabels = { ...labels, 'minkube.test.suite': 'docker' };
  runRuntimeConformance('docker', async () => ({
    runtime: new DockerRuntime(),
    fresh: async () => new DockerRuntime(),
    image: testImage,
    labels: plainLabels,
    cleanup: async () => {
      await removeLabelled(plainLabels);
    },
  }));

  const conformanceSandbox = sandboxName('conformance');
  const sandboxedLabels = { ...labels, 'minkube.test.suite': 'docker-sandbox' };
  runRuntimeConformance('docker, network sandbox', async () => ({
    runtime: new DockerRuntime({ networkSandbox: conformanceSandbox }),
    fresh: async () => new DockerRuntime({ networkSandbox: conformanceSandbox }),
    image: testImage,
    labels: sandboxedLabels,
    cleanup: async () => {
      await removeLabelled(sandboxedLabels);
      await removeSandbox(conformanceSandbox);
    },
  }));

  networkSandboxTests();

  describe('Docker specifics', () => {
    const rt = new DockerRuntime();
    const docker = new Docker();
    let n = 0;
    const name = (): string => `minkube-docker-test-${labels['minkube.test.run']}-${++n}`;

    it("engine() is `docker:` and the engine's ID, whichever client asks", async () => {
      const { ID } = (await docker.info()) as { ID: string };
      expect(ID).not.toBe('');
      expect(await rt.engine()).toBe(`docker:${ID}`);
      // Another client of the engine: a second worker process on this host.
      expect(await new DockerRuntime().engine()).toBe(`docker:${ID}`);
    });

    it('an image that is neither local nor pullable is a permanent image-not-found', async () => {
      const failure = await expectFailure(
        rt.run({ name: name(), image: 'minkube-no-such-image:never', command: ['true'], labels }),
        'image-not-found',
        'permanent',
      );
      expect(failure.message).toContain('minkube-no-such-image:never');
    });

    it.each(['minkube-busybox:latest; rm -rf /', ' ', 'UPPER/Case:tag', 'a@sha256:zz'])('image %j is a permanent invalid-spec, asked of nobody', async (image) => {
      const failure = await expectFailure(rt.run({ name: name(), image, command: ['true'], labels }), 'invalid-spec', 'permanent');
      expect(failure.message).toContain('not an image reference');
    });

    it('applies cpu and memory limits, network mode none, and the task labels', async () => {
      const taskLabels = { ...labels, 'minkube.task': 't-42', 'minkube.worker': 'w-1', 'minkube.attempt': '3' };
      const { id } = await rt.run({
        name: name(), image: testImage, command: ['sleep', '30'], labels: taskLabels, resources: { cpus: 0.5, memoryMb: 64 },
      });
      try {
        const info = await docker.getContainer(id).inspect();
        expect(info.HostConfig.NanoCpus).toBe(500_000_000);
        expect(info.HostConfig.Memory).toBe(64 * 2 ** 20);
        expect(info.HostConfig.NetworkMode).toBe('none');
        expect(info.HostConfig.AutoRemove).toBe(false);
        expect(info.Config.Labels).toMatchObject({ 'minkube.task': 't-42', 'minkube.worker': 'w-1', 'minkube.attempt': '3' });
        const listed = await rt.list({ 'minkube.task': 't-42', 'minkube.test.run': labels['minkube.test.run'] ?? '' });
        expect(listed.map((c) => c.id)).toEqual([id]);
      } finally {
        await rt.remove(id);
      }
    });

    it("gives the container the run's stopSignal and stopTimeoutS as its StopSignal and StopTimeout, and none without them", async () => {
      const withStop = await rt.run({ name: name(), image: testImage, command: ['sleep', '30'], labels, stopSignal: 'SIGINT', stopTimeoutS: 3 });
      const without = await rt.run({ name: name(), image: testImage, command: ['sleep', '30'], labels });
      try {
        const info = await docker.getContainer(withStop.id).inspect();
        expect(info.Config).toMatchObject({ StopSignal: 'SIGINT', StopTimeout: 3 });
        // Absent from dockerode's type; the engine answers it (null when not set: the engine's default, 10 s).
        const otherConfig = (await docker.getContainer(without.id).inspect()).Config as { StopTimeout?: number | null };
        expect(otherConfig.StopTimeout ?? null).toBeNull();
      } finally {
        await Promise.all([rt.remove(withStop.id), rt.remove(without.id)]);
      }
    });

    it('wait says when the OOM killer ended a container over its memory limit, and only then', async () => {
      const { id } = await rt.run({ name: name(), image: testImage, command: ['sh', '-c', 'x=a; while true; do x=$x$x; done'], labels, resources: { memoryMb: 16 } });
      const exited137 = await rt.run({ name: name(), image: testImage, command: ['sh', '-c', 'exit 137'], labels, resources: { memoryMb: 16 } });
      try {
        expect(await rt.wait(id)).toEqual({ exitCode: 137, oomKilled: true });
        expect(await rt.wait(exited137.id)).toStrictEqual({ exitCode: 137 });
      } finally {
        await Promise.all([rt.remove(id), rt.remove(exited137.id)]);
      }
    });

    it('a container that fails to start is removed, so its name can be used again', async () => {
      const spec = { name: name(), image: testImage, command: ['/etc/passwd'], labels };
      await expectFailure(rt.run(spec), 'command-not-found', 'permanent');
      const { id } = await rt.run({ ...spec, command: ['true'] });
      await rt.remove(id);
    });

    it('a second container with the same name is a permanent name-conflict', async () => {
      const spec = { name: name(), image: testImage, command: ['true'], labels };
      const { id } = await rt.run(spec);
      try {
        await expectFailure(rt.run(spec), 'name-conflict', 'permanent');
      } finally {
        await rt.remove(id);
      }
    });

    it('a brief list asks only about containers not running: a running one comes without its start time, an exited one with its exit code', async () => {
      const group = { ...labels, 'minkube.task': `brief-${labels['minkube.test.run']}` };
      const running = await rt.run({ name: name(), image: testImage, command: ['sleep', '30'], labels: group });
      const exited = await rt.run({ name: name(), image: testImage, command: ['sh', '-c', 'exit 3'], labels: group });
      try {
        await rt.wait(exited.id);
        const inspected: string[] = [];
        const counting = new DockerRuntime({ docker: new Proxy(docker, {
          get: (target, key) => (key === 'getContainer' ? (id: string) => {
            inspected.push(id);
            return target.getContainer(id);
          } : Reflect.get(target, key, target) as unknown),
        }) });
        const brief = await counting.list(group, { brief: true });
        expect(inspected).toEqual([exited.id]);
        expect(brief.find((c) => c.id === running.id)).toEqual({
          id: running.id, name: expect.stringMatching(/^minkube-docker-test-/) as string, image: testImage, labels: expect.objectContaining(group) as Record<string, string>, state: 'running', exitCode: null,
        });
        expect(brief.find((c) => c.id === exited.id)).toMatchObject({ state: 'exited', exitCode: 3 });
        const full = await counting.list(group);
        expect(full.find((c) => c.id === running.id)?.startedAt).toEqual(expect.any(Number));
      } finally {
        await rt.remove(running.id);
        await rt.remove(exited.id);
      }
    });

    it('a resource limit the daemon refuses is a permanent invalid-spec', async () => {
      await expectFailure(
        rt.run({ name: name(), image: testImage, command: ['true'], labels, resources: { cpus: 1000 } }),
        'invalid-spec',
        'permanent',
      );
    });
  });
});

function capturingLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      messages.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), messages };
}

function networkSandboxTests(): void {
  describe('network sandbox', () => {
    const docker = new Docker();
    const sandbox = sandboxName('specifics');
    const { logger, messages } = capturingLogger();
    const rt = new DockerRuntime({ networkSandbox: sandbox, logger });
    let n = 0;
    // Prints the task's network namespace and its interfaces (loopback only).
    const probe = async (runtime = rt): Promise<{ id: string; output: string }> => {
      const name = `minkube-sandbox-task-${labels['minkube.test.run']}-${++n}`;
      const { id } = await runtime.run({ name, image: testImage, command: ['sh', '-c', 'readlink /proc/self/ns/net; ls /sys/class/net'], labels });
      expect(await runtime.wait(id)).toEqual({ exitCode: 0 });
      return { id, output: await runtime.logs(id) };
    };
    const sandboxInfo = (): Promise<Docker.ContainerInspectInfo> => docker.getContainer(sandbox).inspect();
    // Docker records the joined container by id.
    const networkModeOf = async (id: string): Promise<string | undefined> => (await docker.getContainer(id).inspect()).HostConfig.NetworkMode;
    const started = (): number => messages.filter((m) => m === 'network sandbox started').length;

    afterAll(async () => {
      await removeSandbox(sandbox);
    });

    it('tasks share one network namespace, loopback only, in a sandbox made once', async () => {
      const [a, b] = await Promise.all([probe(), probe()]);
      const alone = await probe(new DockerRuntime());
      expect(a?.output).toMatch(/^net:\[\d+\]\nlo\n$/);
      expect(b?.output).toBe(a?.output);
      expect(alone.output).not.toBe(a?.output);
      const info = await sandboxInfo();
      expect([await networkModeOf(a?.id ?? ''), await networkModeOf(b?.id ?? '')]).toEqual([`container:${info.Id}`, `container:${info.Id}`]);
      expect(await networkModeOf(alone.id)).toBe('none');
      expect(started()).toBe(1);
      expect(info.State.Running).toBe(true);
      expect(info.Config.Image).toBe(pauseImage);
      expect(info.Config.Labels).toEqual({ [sandboxLabel]: sandbox });
      expect(info.HostConfig).toMatchObject({ NetworkMode: 'none', RestartPolicy: { Name: 'unless-stopped' } });
    });

    it('the runtime of a restarted worker reuses the running sandbox', async () => {
      const before = (await sandboxInfo()).Id;
      const fresh = new DockerRuntime({ networkSandbox: sandbox, logger });
      const startedBefore = started();
      await probe(fresh);
      expect((await sandboxInfo()).Id).toBe(before);
      expect(started()).toBe(startedBefore);
      await fresh.close();
      expect((await sandboxInfo()).State.Running).toBe(true);
    });

    // (Namespace inode numbers are reused once freed, so a new sandbox's may equal the old one's: not compared.)
    it('a stopped sandbox is started again by the next run', async () => {
      await probe();
      const { Id } = await sandboxInfo();
      await docker.getContainer(sandbox).stop({ t: 0 });
      const after = await probe();
      const info = await sandboxInfo();
      expect({ id: info.Id, running: info.State.Running }).toEqual({ id: Id, running: true });
      expect(await networkModeOf(after.id)).toBe(`container:${Id}`);
      expect(messages).toContain('network sandbox restarted');
    });

    it('a removed sandbox is made again by the next run, once for concurrent runs', async () => {
      await probe();
      const { Id } = await sandboxInfo();
      await docker.getContainer(sandbox).remove({ force: true });
      const startedBefore = started();
      const [a, b] = await Promise.all([probe(), probe()]);
      const info = await sandboxInfo();
      expect(info.Id).not.toBe(Id);
      expect(info.State.Running).toBe(true);
      expect(started()).toBe(startedBefore + 1);
      expect([await networkModeOf(a.id), await networkModeOf(b.id)]).toEqual([`container:${info.Id}`, `container:${info.Id}`]);
      expect(b.output).toBe(a.output);
    });

    it('a sandbox that cannot be made means a task with its own namespace, and a warning', async () => {
      const warned = capturingLogger();
      // Docker refuses the name at create.
      const broken = new DockerRuntime({ networkSandbox: 'minkube sandbox!', logger: warned.logger });
      const { id } = await probe(broken);
      expect((await docker.getContainer(id).inspect()).HostConfig.NetworkMode).toBe('none');
      expect(warned.messages).toContain('could not make the network sandbox; this task gets its own network namespace');
    });
  });
}

describe('DockerRuntime without a daemon', () => {
  it('ping fails as a transient daemon-unreachable naming the endpoint', async () => {
    const rt = new DockerRuntime({ socketPath: '/nonexistent/minkube-docker.sock' });
    const failure = await expectFailure(rt.ping(), 'daemon-unreachable', 'transient');
    expect(failure.message).toContain('unix:///nonexistent/minkube-docker.sock');
    await expectFailure(rt.inspect('x'), 'daemon-unreachable', 'transient');
  });

  it('engine() answers undefined (unknown), with a warning, rather than fail the start of a worker', async () => {
    const warned = capturingLogger();
    const rt = new DockerRuntime({ socketPath: '/nonexistent/minkube-docker.sock', logger: warned.logger });
    await expect(rt.engine()).resolves.toBeUndefined();
    expect(warned.messages).toEqual(['could not ask Docker which engine it is: the worker cannot tell whether another instance of its id shares it']);
  });
});

describe('demuxDockerLogs', () => {
  const frame = (type: number, text: string): Buffer => {
    const payload = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = type;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  it('joins stdout and stderr frames in the order they were written', () => {
    const buf = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]);
    expect(demuxDockerLogs(buf).toString()).toBe('out 1\nerr 1\nout 2\n');
  });

  it('returns a stream without frame headers (a TTY container) as it is', () => {
    expect(demuxDockerLogs(Buffer.from('plain text\n')).toString()).toBe('plain text\n');
  });

  it('keeps what there is of a truncated last frame', () => {
    const whole = frame(1, 'abcdef');
    expect(demuxDockerLogs(whole.subarray(0, 11)).toString()).toBe('abc');
    expect(demuxDockerLogs(Buffer.alloc(0)).toString()).toBe('');
  });

  it('demuxDockerStream: frames whose headers and payloads span chunks, cut at every byte', async () => {
    const all = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]);
    for (let cut = 1; cut < all.length; cut++) {
      async function* chunks(): AsyncGenerator<Buffer> {
        yield all.subarray(0, cut);
        yield all.subarray(cut);
      }
      const parts: Buffer[] = [];
      for await (const c of demuxDockerStream(chunks())) parts.push(Buffer.from(c));
      expect(Buffer.concat(parts).toString(), `cut at ${cut}`).toBe('out 1\nerr 1\nout 2\n');
    }
  });

  it('demuxDockerStream passes a stream without frame headers through', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('plain ');
      yield Buffer.from('text\n');
    }
    const parts: Buffer[] = [];
    for await (const c of demuxDockerStream(chunks())) parts.push(Buffer.from(c));
    expect(Buffer.concat(parts).toString()).toBe('plain text\n');
    async function* short(): AsyncGenerator<Buffer> {
      yield Buffer.from('hi\n');
    }
    const shortParts: Buffer[] = [];
    for await (const c of demuxDockerStream(short())) shortParts.push(Buffer.from(c));
    expect(Buffer.concat(shortParts).toString()).toBe('hi\n');
  });
});

describe('consumePullProgress', () => {
  it('resolves at the end of a progress stream without errors', async () => {
    const lines = ['{"status":"Pulling from library/busybox"}', '{"status":"Downloaded newer image"}'];
    await expect(consumePullProgress(Readable.from([lines.join('\n') + '\n']))).resolves.toBeUndefined();
  });

  it('rejects with the error line the daemon sends after answering 200', async () => {
    const chunks = ['{"status":"Pulling"}\n{"errorDetail":{"message":"manifest for x:1 not fo', 'und"},"error":"manifest for x:1 not found"}\n'];
    await expect(consumePullProgress(Readable.from(chunks))).rejects.toThrow('manifest for x:1 not found');
  });
});
