// The demo image a Docker worker makes from the host's static busybox: the ELF check, the tar it writes, and (with
// Docker) an image made under a tag of this test's own that runs `echo hi`. Failed, not skipped, in CI without Docker.
import { readFileSync } from 'node:fs';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { demoApplets, demoImageRepo, demoImageTar, findStaticBusybox, isStaticElf64 } from '../../src/runtime/demo-image.js';
import { DockerRuntime } from '../../src/runtime/docker.js';
import { pauseProgram } from '../../src/runtime/pause-image.js';
import { describeDocker, removeLabelled, testLabels } from '../support/docker.js';

describe('demo image', () => {
  it('tells a static ELF (the pause program) from a dynamically linked one (node itself)', () => {
    expect(isStaticElf64(pauseProgram())).toBe(true);
    expect(isStaticElf64(readFileSync(process.execPath).subarray(0, 4096))).toBe(false);
    expect(isStaticElf64(Buffer.from('#!/bin/sh\necho hi\n'))).toBe(false);
  });

  it('finds no busybox among paths that hold none', async () => {
    expect(await findStaticBusybox(['/nonexistent/busybox', process.execPath])).toBeNull();
  });

  it('writes a ustar archive: directories, busybox, a link per applet, passwd and group', () => {
    const tar = demoImageTar(Buffer.from('BUSYBOX'));
    const names: string[] = [];
    for (let at = 0; at + 512 <= tar.length; ) {
      const header = tar.subarray(at, at + 512);
      if (header.every((b) => b === 0)) break;
      const name = header.toString('utf8', 0, 100).replace(/\0.*$/s, '');
      const size = parseInt(header.toString('ascii', 124, 135), 8);
      const type = header.toString('ascii', 156, 157);
      names.push(`${type}:${name}`);
      at += 512 + Math.ceil(size / 512) * 512;
    }
    expect(names).toContain('0:bin/busybox');
    expect(names).toContain('5:tmp/');
    expect(names).toContain('0:etc/passwd');
    for (const applet of demoApplets) expect(names).toContain(`2:bin/${applet}`);
    expect(tar.length % 512).toBe(0);
  });
});

describeDocker('demo image, made by the Docker runtime', () => {
  const labels = testLabels();
  const tag = `test-${labels['minkube.test.run']}`;
  const docker = new Docker();
  afterAll(async () => {
    await removeLabelled(labels);
    await docker.getImage(`${demoImageRepo}:${tag}`).remove({ force: true }).catch(() => undefined);
  });

  it('imports it from the host busybox, and a task in it runs echo', async () => {
    expect(await findStaticBusybox(), 'a static busybox on this host (busybox-static)').not.toBeNull();
    const rt = new DockerRuntime();
    await rt.makeDemoImage(tag);
    const info = await docker.getImage(`${demoImageRepo}:${tag}`).inspect();
    expect(info.Config.Env).toContain('PATH=/bin');
    const { id } = await rt.run({ name: `minkube-demo-test-${labels['minkube.test.run']}`, image: `${demoImageRepo}:${tag}`, command: ['echo', 'hi'], labels });
    expect(await rt.wait(id)).toMatchObject({ exitCode: 0 });
    expect(await rt.logs(id)).toBe('hi\n');
  }, 60_000);
});
