// Docker for tests: whether it is reachable (with the test image), and describeDocker, which skips its tests when
// it is not, except under MINKUBE_REQUIRE_DOCKER=1 (CI), where they fail with the reason.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe } from 'vitest';
import Docker from 'dockerode';
import { workerInstanceFile } from '../../src/worker/instance.js';
import { DockerRuntime, sandboxNameFor } from '../../src/runtime/docker.js';

export const testImage = process.env.MINKUBE_TEST_IMAGE ?? 'minkube-busybox:latest';

/** Labels for every container a test file creates: minkube.test=1, and a per-file run id to clean up by. */
export function testLabels(): Record<string, string> {
  return { 'minkube.test': '1', 'minkube.test.run': randomBytes(6).toString('hex') };
}

export interface DockerStatus {
  up: boolean;
  reason: string;
}

let status: Promise<DockerStatus> | undefined;

/** Pings Docker once per test file and checks that the test image is there. */
export function dockerStatus(): Promise<DockerStatus> {
  status ??= probe();
  return status;
}

export async function dockerAvailable(): Promise<boolean> {
  return (await dockerStatus()).up;
}

async function probe(): Promise<DockerStatus> {
  const runtime = new DockerRuntime({ callTimeoutMs: 3000 });
  try {
    await runtime.ping(2000);
  } catch (err) {
    return { up: false, reason: (err as Error).message };
  }
  try {
    await new Docker().getImage(testImage).inspect();
  } catch {
    return { up: false, reason: `Docker is up but the image ${testImage} is missing: run bash scripts/docker-setup.sh` };
  }
  return { up: true, reason: 'ok' };
}

const current = await dockerStatus();

/** describe() when Docker is usable; otherwise skipped, or failed with the reason when Docker is required. */
export function describeDocker(name: string, fn: () => void): void {
  if (current.up) {
    describe(name, fn);
  } else if (process.env.MINKUBE_REQUIRE_DOCKER === '1') {
    describe(name, () => {
      // beforeEach, not beforeAll: a failing beforeAll only skips the tests; this fails each of them.
      beforeEach(() => {
        throw new Error(`MINKUBE_REQUIRE_DOCKER=1 but Docker cannot be used: ${current.reason}`);
      });
      fn();
    });
  } else {
    describe.skipIf(true)(`${name} (Docker not available: ${current.reason})`, fn);
  }
}

/** Removes every container carrying the labels (force: running ones too). */
export async function removeLabelled(labels: Record<string, string>): Promise<number> {
  if (!current.up) return 0;
  const runtime = new DockerRuntime();
  const found = await runtime.list(labels);
  await Promise.all(found.map((c) => runtime.remove(c.id)));
  return found.length;
}

/**
 * The network sandboxes of a test cluster's Docker workers (one per worker instance, named after the instance id in
 * its data directory `<dir>/<id>`): read before the cluster's directory is removed, removed after its workers.
 */
export function workerSandboxes(dir: string, workerIds: readonly string[]): string[] {
  return workerIds.flatMap((id) => {
    try {
      return [sandboxNameFor(id, readFileSync(join(dir, id, workerInstanceFile), 'utf8').trim())];
    } catch {
      return [];
    }
  });
}

export async function removeContainersNamed(names: readonly string[]): Promise<void> {
  if (!current.up) return;
  const runtime = new DockerRuntime();
  await Promise.all(names.map((name) => runtime.remove(name).catch(() => undefined)));
}
