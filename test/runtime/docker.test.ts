// DockerRuntime against a real engine (image minkube-busybox:latest): the conformance suite, then what only Docker
// does: pulling, resource limits, labels, network mode. Skipped without Docker, failed in CI (describeDocker).
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime, consumePullProgress, demuxDockerLogs } from '../../src/runtime/docker.js';
import { describeDocker, removeLabelled, testImage, testLabels } from '../support/docker.js';
import { expectFailure, runRuntimeConformance } from './conformance.js';
import { Readable } from 'node:stream';

const labels = testLabels();

describeDocker('DockerRuntime', () => {
  afterAll(async () => {
    await removeLabelled(labels);
  });

  runRuntimeConformance('docker', async () => ({
    runtime: new DockerRuntime(),
    fresh: async () => new DockerRuntime(),
    image: testImage,
    labels,
    cleanup: async () => {
      await removeLabelled(labels);
    },
  }));

  describe('Docker specifics', () => {
    const rt = new DockerRuntime();
    const docker = new Docker();
    let n = 0;
    const name = (): string => `minkube-docker-test-${labels['minkube.test.run']}-${++n}`;

    it('an image that is neither local nor pullable is a permanent image-not-found', async () => {
      const failure = await expectFailure(
        rt.run({ name: name(), image: 'minkube-no-such-image:never', command: ['true'], labels }),
        'image-not-found',
        'permanent',
      );
      expect(failure.message).toContain('minkube-no-such-image:never');
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

    it('a resource limit the daemon refuses is a permanent invalid-spec', async () => {
      await expectFailure(
        rt.run({ name: name(), image: testImage, command: ['true'], labels, resources: { cpus: 1000 } }),
        'invalid-spec',
        'permanent',
      );
    });
  });
});

describe('DockerRuntime without a daemon', () => {
  it('ping fails as a transient daemon-unreachable naming the endpoint', async () => {
    const rt = new DockerRuntime({ socketPath: '/nonexistent/minkube-docker.sock' });
    const failure = await expectFailure(rt.ping(), 'daemon-unreachable', 'transient');
    expect(failure.message).toContain('unix:///nonexistent/minkube-docker.sock');
    await expectFailure(rt.inspect('x'), 'daemon-unreachable', 'transient');
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
