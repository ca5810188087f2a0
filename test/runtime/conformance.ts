// The ContainerRuntime conformance suite: every implementation (docker, process, memory) runs these same tests, so
// the worker agent can rely on one behaviour. Commands are ones busybox and a Linux host both have.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { RuntimeFailure, type ContainerRuntime, type FailureClass, type RunSpec, type RuntimeFailureReason } from '../../src/runtime/types.js';

export interface ConformanceSubject {
  runtime: ContainerRuntime;
  /** Another instance over the same host and state: the runtime of a restarted worker. */
  fresh(): Promise<ContainerRuntime>;
  image: string;
  /** Put on every container the suite runs (the suite adds its own labels too). */
  labels: Record<string, string>;
  cleanup(): Promise<void>;
}

export async function expectFailure(
  promise: Promise<unknown>,
  reason: RuntimeFailureReason,
  failureClass: FailureClass,
): Promise<RuntimeFailure> {
  const err: unknown = await promise.then(
    () => new Error(`expected a ${reason} failure, but it succeeded`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RuntimeFailure);
  const failure = err as RuntimeFailure;
  expect({ reason: failure.reason, failureClass: failure.failureClass }, failure.message).toEqual({ reason, failureClass });
  return failure;
}

/** What the tests share: the subject (set in beforeAll) and unique names and labels for this run of the suite. */
class Harness {
  subject!: ConformanceSubject;
  readonly suite = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly created: string[] = [];

  get rt(): ContainerRuntime {
    return this.subject.runtime;
  }

  spec(command: string[] | undefined, extra: Partial<RunSpec> = {}): RunSpec {
    const labels = { ...this.subject.labels, 'minkube.conformance': this.suite, ...extra.labels };
    const s: RunSpec = { ...extra, name: `minkube-conf-${this.suite}-${++this.seq}`, image: this.subject.image, labels };
    if (command !== undefined) s.command = command;
    return s;
  }

  /** Runs a container that afterAll removes. */
  async start(command: string[], extra: Partial<RunSpec> = {}): Promise<string> {
    const { id } = await this.rt.run(this.spec(command, extra));
    this.created.push(id);
    return id;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.created.splice(0).map((id) => this.rt.remove(id)));
    await this.subject.cleanup();
  }
}

export function runRuntimeConformance(name: string, factory: () => Promise<ConformanceSubject>): void {
  // Concurrent: the tests share nothing but the runtime (names and labels are unique), and most of a container's time
  // is spent waiting on the engine.
  describe.concurrent(`ContainerRuntime conformance: ${name}`, () => {
    const h = new Harness();
    beforeAll(async () => {
      h.subject = await factory();
    });
    afterAll(async () => {
      await h.cleanup();
    });
    outputTests(h);
    followTests(h);
    lifecycleTests(h);
    failureTests(h);
  });
}

async function readAll(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('utf8');
}

/** followLogs: the tail, then output as it comes, to the container's end; an abort ends it early. */
function followTests(h: Harness): void {
  const never = new AbortController().signal;

  it('followLogs gives the tail, then the output as it is written, and ends once the container has exited', async () => {
    const id = await h.start(['sh', '-c', 'echo 1; echo 2; sleep 1; echo 3; sleep 1; echo 4']);
    await waitFor('the first two lines', async () => (await h.rt.logs(id)).includes('2\n'));
    const text = await readAll(await h.rt.followLogs(id, { tailLines: 1, signal: never }));
    expect(text).toBe('2\n3\n4\n');
    expect((await h.rt.inspect(id))?.state).toBe('exited');
  });

  it('followLogs keeps the last output of a container removed as soon as it exits (as a worker does)', async () => {
    const { id } = await h.rt.run(h.spec(['sh', '-c', 'echo a; sleep 1; echo b']));
    const following = readAll(await h.rt.followLogs(id, { signal: never }));
    await h.rt.wait(id);
    await h.rt.remove(id);
    expect(await following).toBe('a\nb\n');
  });

  it('followLogs with tailLines 0 gives only what is written after', async () => {
    const id = await h.start(['sh', '-c', 'echo before; sleep 1; echo after']);
    await waitFor('the first line', async () => (await h.rt.logs(id)).includes('before'));
    expect(await readAll(await h.rt.followLogs(id, { tailLines: 0, signal: never }))).toBe('after\n');
  });

  it('followLogs of an exited container gives its tail and ends', async () => {
    const id = await h.start(['sh', '-c', 'echo a; echo b; echo c']);
    await h.rt.wait(id);
    expect(await readAll(await h.rt.followLogs(id, { tailLines: 2, signal: never }))).toBe('b\nc\n');
  });

  it('followLogs ends quietly when its signal aborts', async () => {
    const id = await h.start(['sh', '-c', 'echo ready; sleep 30']);
    await waitFor('ready', async () => (await h.rt.logs(id)).includes('ready'));
    const ac = new AbortController();
    const it = (await h.rt.followLogs(id, { signal: ac.signal }))[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done === true ? '' : Buffer.from(first.value).toString()).toBe('ready\n');
    const next = it.next();
    ac.abort();
    expect((await next).done).toBe(true);
    await h.rt.stop(id, 0);
  });

  it('followLogs of an unknown id fails permanently', async () => {
    await expectFailure(h.rt.followLogs(`nope-${h.suite}`, { signal: never }), 'container-not-found', 'permanent');
  });
}

/** Exit codes, output, env and labels. */
function outputTests(h: Harness): void {
  it('runs echo; wait gives exit code 0 and logs() the output', async () => {
    const id = await h.start(['echo', 'hello', 'world']);
    expect(await h.rt.wait(id)).toEqual({ exitCode: 0 });
    expect(await h.rt.logs(id)).toBe('hello world\n');
  });

  it('reports exit codes 0 and 3', async () => {
    const ok = await h.start(['true']);
    const three = await h.start(['sh', '-c', 'exit 3']);
    expect(await h.rt.wait(ok)).toEqual({ exitCode: 0 });
    expect(await h.rt.wait(three)).toEqual({ exitCode: 3 });
    expect(await h.rt.inspect(three)).toMatchObject({ state: 'exited', exitCode: 3 });
  });

  it('passes env through', async () => {
    const id = await h.start(['sh', '-c', 'echo "$MINKUBE_GREETING"'], { env: { MINKUBE_GREETING: 'hi there' } });
    await h.rt.wait(id);
    expect(await h.rt.logs(id)).toBe('hi there\n');
  });

  it('logs stdout and stderr, and honours tailLines', async () => {
    const both = await h.start(['sh', '-c', 'echo out; echo err >&2']);
    const lines = await h.start(['sh', '-c', 'echo 1; echo 2; echo 3']);
    await Promise.all([h.rt.wait(both), h.rt.wait(lines)]);
    const text = await h.rt.logs(both);
    expect(text).toContain('out\n');
    expect(text).toContain('err\n');
    expect(await h.rt.logs(lines, { tailLines: 2 })).toBe('2\n3\n');
  });

  it('keeps labels, and list filters on every given label', async () => {
    const a = await h.start(['true'], { labels: { 'minkube.task': 't-a', 'minkube.group': 'g' } });
    const b = await h.start(['true'], { labels: { 'minkube.task': 't-b', 'minkube.group': 'g' } });
    await Promise.all([h.rt.wait(a), h.rt.wait(b)]);
    const both = await h.rt.list({ 'minkube.conformance': h.suite, 'minkube.group': 'g' });
    expect(both.map((c) => c.id).sort()).toEqual([a, b].sort());
    const onlyA = await h.rt.list({ 'minkube.conformance': h.suite, 'minkube.task': 't-a' });
    expect(onlyA.map((c) => c.id)).toEqual([a]);
    expect(onlyA[0]?.labels).toMatchObject({ 'minkube.task': 't-a', 'minkube.group': 'g' });
    expect(await h.rt.list({ 'minkube.conformance': h.suite, 'minkube.task': 'nobody' })).toEqual([]);
  });
}

/** Stopping, removing, waiting, and re-adoption by a restarted worker. */
function lifecycleTests(h: Harness): void {
  it('inspect shows a running container, then its exit and times', async () => {
    const id = await h.start(['sleep', '30']);
    const running = await h.rt.inspect(id);
    expect(running).toMatchObject({ id, state: 'running', exitCode: null });
    expect(running?.startedAt).toBeTypeOf('number');
    await h.rt.stop(id, 0);
    const exited = await h.rt.inspect(id);
    expect(exited?.state).toBe('exited');
    expect(exited?.exitCode).not.toBe(0);
    expect(exited?.finishedAt).toBeGreaterThanOrEqual(exited?.startedAt ?? Infinity);
  });

  it('stops a long sleep within the timeout', async () => {
    const id = await h.start(['sleep', '30']);
    const waited = h.rt.wait(id);
    const t0 = performance.now();
    await h.rt.stop(id, 1000);
    // The stop escalates to a kill after its timeout instead of waiting out the 30 s sleep; the bound is loose
    // because a loaded CI machine can take seconds to kill a container.
    expect(performance.now() - t0).toBeLessThan(15_000);
    const { exitCode } = await waited;
    expect(exitCode).not.toBe(0);
    expect((await h.rt.inspect(id))?.state).toBe('exited');
  });

  it('stop and remove of an exited or removed container are no-ops', async () => {
    const id = await h.start(['true']);
    await h.rt.wait(id);
    await h.rt.stop(id, 1000);
    await h.rt.remove(id);
    await h.rt.stop(id, 1000);
    await h.rt.remove(id);
    expect(await h.rt.inspect(id)).toBeNull();
  });

  it('a wait abandoned through its signal rejects', async () => {
    const id = await h.start(['sleep', '30']);
    const controller = new AbortController();
    const waiting = h.rt.wait(id, { signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(RuntimeFailure);
  });

  it('a fresh runtime instance re-adopts a running container through list', async () => {
    const id = await h.start(['sleep', '30'], { labels: { 'minkube.task': 'adopt-me' } });
    const waited = h.rt.wait(id);
    const fresh = await h.subject.fresh();
    try {
      const found = await fresh.list({ 'minkube.conformance': h.suite, 'minkube.task': 'adopt-me' });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({ id, state: 'running', labels: { 'minkube.task': 'adopt-me' } });
      await fresh.stop(id, 1000);
      expect((await fresh.inspect(id))?.state).toBe('exited');
      expect((await waited).exitCode).not.toBe(0);
    } finally {
      await fresh.close();
    }
  });

  it('engine(), where a runtime has one, is one printable string from every instance on the engine (two worker processes there)', async () => {
    const fresh = await h.subject.fresh();
    try {
      const [mine, theirs] = await Promise.all([h.rt.engine?.(), fresh.engine?.()]);
      expect(theirs).toBe(mine);
      // What a registration may carry (RegisterBody.engine); a runtime without the method has no engine to share.
      if (h.rt.engine !== undefined) expect(mine).toMatch(/^[!-~]{1,128}$/);
      else expect(mine).toBeUndefined();
    } finally {
      await fresh.close();
    }
  });
}

/** Failures and their classes. */
function failureTests(h: Harness): void {
  it('a command that does not exist is a permanent failure', async () => {
    await expectFailure(h.rt.run(h.spec(['/nonexistent/minkube-no-such-command'])), 'command-not-found', 'permanent');
    await expectFailure(h.rt.run(h.spec(['minkube-no-such-command'])), 'command-not-found', 'permanent');
  });

  it('an invalid spec is a permanent failure', async () => {
    await expectFailure(h.rt.run({ ...h.spec(['true']), name: '' }), 'invalid-spec', 'permanent');
    await expectFailure(h.rt.run(h.spec([])), 'invalid-spec', 'permanent');
  });

  it('inspect of an unknown id is null; wait and logs of one fail permanently', async () => {
    const unknown = 'f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed';
    expect(await h.rt.inspect(unknown)).toBeNull();
    await expectFailure(h.rt.wait(unknown), 'container-not-found', 'permanent');
    await expectFailure(h.rt.logs(unknown), 'container-not-found', 'permanent');
  });
}
