// DockerRuntime: tasks as Docker containers through dockerode. Every call has a deadline (a hung daemon must not hang
// the worker) and every failure leaves here as a classified RuntimeFailure.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { imageReferenceProblem } from '../lib/image-reference.js';
import { limits } from '../lib/limits.js';
import { classifyRuntimeError } from './classify.js';
import { busyboxCandidates, demoImage, demoImageChanges, demoImageRepo, demoImageTag, demoImageTar, findStaticBusybox } from './demo-image.js';
import { pauseCommand, pauseImage, pauseImageRepo, pauseImageSupported, pauseImageTag, pauseImageTar } from './pause-image.js';
import { validateRunSpec, tailBytes } from './spec.js';
import { RuntimeFailure, type ContainerInfo, type ContainerRuntime, type ContainerState, type ExitStatus, type RunSpec } from './types.js';

export interface DockerRuntimeOptions {
  /** A ready client (tests); otherwise one is made from socketPath, else DOCKER_HOST, else the default socket. */
  docker?: Docker;
  socketPath?: string;
  callTimeoutMs?: number;
  pullTimeoutMs?: number;
  /**
   * Run docker-init as PID 1, so a command that ignores SIGTERM as PID 1 still gets it and zombies are reaped.
   * Default false: under an init, a missing command is init's exit code 127 from wait(), not a permanent failure
   * from run().
   */
  init?: boolean;
  /** Per-container json-file log bound on the daemon's disk. */
  logFileBytesMax?: number;
  /**
   * The name of a container whose network namespace (loopback only) every task container joins, as a Kubernetes
   * pod's containers join its pause container: Docker then starts a task in about half the time, because it builds
   * no network namespace per container. Made on first use, left running by close(). Undefined: each task gets its
   * own namespace (NetworkMode none). Ignored on hosts the pause program does not run on (not x86-64).
   */
  networkSandbox?: string;
  logger?: Logger;
}

/** The label on a network sandbox (its value is the sandbox's name). Not minkube.worker: a worker's reconcile
 * removes containers labelled with its id that it has no task for. */
export const sandboxLabel = 'minkube.sandbox';
/** The pause program needs almost nothing; Docker refuses limits under 6 MiB. */
const sandboxMemoryBytes = 8 * 2 ** 20;

/**
 * The network sandbox of a worker instance (its id and the instance id its data directory keeps): a restarted worker
 * reuses its predecessor's, and another cluster's worker of the same name on this engine has its own.
 */
export function sandboxNameFor(workerId: string, instance: string): string {
  return `minkube-sandbox-${workerId}-${instance}`;
}

/** One attempt to make the network sandbox; its identity tells a caller whether the attempt it saw is still current. */
interface SandboxMemo {
  ready: Promise<void>;
}

/** Where dockerode will connect, in words for log lines and errors. */
export function dockerEndpoint(socketPath?: string): string {
  if (socketPath !== undefined) return `unix://${socketPath}`;
  return process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

export class DockerRuntime implements ContainerRuntime {
  readonly kind = 'docker' as const;
  readonly endpoint: string;
  private readonly docker: Docker;
  private readonly callTimeoutMs: number;
  private readonly pullTimeoutMs: number;
  private readonly init: boolean;
  private readonly logFileBytesMax: number;
  private readonly logger: Logger | undefined;
  private readonly networkSandbox: string | undefined;
  /** The one attempt to make the sandbox that concurrent runs share; null after a failure or a lost sandbox. */
  private sandboxMemo: SandboxMemo | null = null;
  private demoImport: Promise<void> | null = null;
  /** engine(): known once the engine answered (it never changes while the worker runs). */
  private engineId: string | undefined;

  constructor(opts: DockerRuntimeOptions = {}) {
    this.docker = opts.docker ?? new Docker(opts.socketPath === undefined ? undefined : { socketPath: opts.socketPath });
    this.endpoint = dockerEndpoint(opts.socketPath);
    this.callTimeoutMs = opts.callTimeoutMs ?? limits.runtimeCallTimeoutMsDefault;
    this.pullTimeoutMs = opts.pullTimeoutMs ?? limits.runtimePullTimeoutMsDefault;
    this.init = opts.init ?? false;
    this.logFileBytesMax = opts.logFileBytesMax ?? limits.processLogFileBytesMax;
    this.logger = opts.logger;
    this.networkSandbox = opts.networkSandbox;
    if (opts.networkSandbox !== undefined && !pauseImageSupported()) {
      this.networkSandbox = undefined;
      this.logger?.info(
        { arch: process.arch, sandbox: opts.networkSandbox },
        'no network sandbox: its pause program is x86-64 code; each task gets its own network namespace',
      );
    }
  }

  async ping(timeoutMs = this.callTimeoutMs): Promise<void> {
    try {
      // @types/dockerode leaves out ping's options; dockerode takes an abortSignal there.
      const ping = this.docker.ping.bind(this.docker) as unknown as (opts: { abortSignal: AbortSignal }) => Promise<unknown>;
      await this.call('ping', (signal) => ping({ abortSignal: signal }), timeoutMs);
    } catch (err) {
      const failure = classifyRuntimeError(err);
      throw new RuntimeFailure('daemon-unreachable', `Docker is not reachable at ${this.endpoint}: ${failure.message}`, {
        cause: err,
      });
    }
  }

  /**
   * `docker:` and the engine's ID (`docker info`), asked once: equal for every client of one engine, whichever socket
   * or address reaches it. Undefined, with a warning, when the engine does not answer (asked again next time).
   */
  async engine(): Promise<string | undefined> {
    if (this.engineId !== undefined) return this.engineId;
    try {
      // @types/dockerode leaves out info's options; dockerode takes an abortSignal there.
      const info = this.docker.info.bind(this.docker) as unknown as (opts: { abortSignal: AbortSignal }) => Promise<{ ID?: unknown }>;
      const { ID: id } = await this.call('info', (signal) => info({ abortSignal: signal }));
      if (typeof id !== 'string' || id === '') {
        this.logger?.warn({ endpoint: this.endpoint }, 'Docker answered no engine ID: the worker cannot tell whether another instance of its id shares this engine');
        return undefined;
      }
      this.engineId = `docker:${id}`;
      return this.engineId;
    } catch (err) {
      this.logger?.warn({ err, endpoint: this.endpoint }, 'could not ask Docker which engine it is: the worker cannot tell whether another instance of its id shares it');
      return undefined;
    }
  }

  async run(spec: RunSpec): Promise<{ id: string }> {
    validateRunSpec(spec, { commandRequired: false });
    // Before any call: a reference with a space cannot even go in a request path, and dockerode would fail unclassified.
    const imageProblem = imageReferenceProblem(spec.image);
    if (imageProblem !== null) throw new RuntimeFailure('invalid-spec', `invalid run spec: image ${JSON.stringify(spec.image)} is ${imageProblem}`);
    // Looked for before every create, although `docker run` only asks after a create fails: measured, creating at
    // once made a burst of 50 starts hit a loaded daemon together, and the workers' heartbeats lapsed for seconds
    // (bench/services.ts --trace: placed at 7 s instead of 0.7 s, both workers marked down).
    await this.ensureImage(spec.image);
    // A task with ports listens on its host port in the host's namespace: no bridge or port mapping needed.
    if (spec.hostNetwork === true) return this.createAndStart(spec, 'host');
    if (this.networkSandbox === undefined) return this.createAndStart(spec, 'none');
    return this.runInSandbox(spec, this.networkSandbox);
  }

  private async createAndStart(spec: RunSpec, networkMode: string): Promise<{ id: string }> {
    const container = await this.call('create', (signal) =>
      this.docker.createContainer({ ...this.createOptions(spec, networkMode), abortSignal: signal }),
    );
    try {
      await this.call('start', (signal) => container.start({ abortSignal: signal }));
    } catch (err) {
      // A container that never started would block its name and leak: take it away before reporting.
      await this.remove(container.id).catch((removeErr: unknown) =>
        this.logger?.warn({ err: removeErr, id: container.id }, 'could not remove a container that failed to start'),
      );
      throw err;
    }
    return { id: container.id };
  }

  private createOptions(spec: RunSpec, networkMode: string): Docker.ContainerCreateOptions {
    const hostConfig: Docker.HostConfig = {
      NetworkMode: networkMode,
      AutoRemove: false,
      Init: this.init,
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(this.logFileBytesMax), 'max-file': '2' } },
    };
    const { cpus, memoryMb } = spec.resources ?? {};
    if (cpus !== undefined) hostConfig.NanoCpus = Math.round(cpus * 1e9);
    if (memoryMb !== undefined) hostConfig.Memory = Math.round(memoryMb * 2 ** 20);
    const options: Docker.ContainerCreateOptions = {
      name: spec.name,
      Image: spec.image,
      Labels: { ...spec.labels },
      Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
      Tty: false,
      OpenStdin: false,
      HostConfig: hostConfig,
    };
    if (spec.command !== undefined) options.Cmd = [...spec.command];
    // What `docker stop` (ours, or the daemon's own at its shutdown) sends first, for the container's whole life.
    if (spec.stopSignal !== undefined) options.StopSignal = spec.stopSignal;
    if (spec.stopTimeoutS !== undefined) options.StopTimeout = spec.stopTimeoutS;
    return options;
  }

  /**
   * A task in the sandbox's network namespace. Starting a task matters more than the speed-up, so a sandbox found
   * gone or stopped is made again and the task tried once more, and a sandbox that cannot be made means a task with
   * its own namespace (NetworkMode none) rather than a failed task.
   */
  private async runInSandbox(spec: RunSpec, sandbox: string): Promise<{ id: string }> {
    // At most three tries: in the sandbox; in a sandbox made again; without one.
    for (let attempt = 1; ; attempt++) {
      const joined = attempt < 3 ? await this.joinSandbox(sandbox) : null;
      try {
        return await this.createAndStart(spec, joined === null ? 'none' : `container:${sandbox}`);
      } catch (err) {
        if (joined === null || !sandboxGone(err, sandbox)) throw err;
        this.forgetSandbox(joined);
        this.logger?.warn({ err, sandbox, container: spec.name }, 'the network sandbox is gone or stopped; making it again');
      }
    }
  }

  /** The memo of a running sandbox, or null (with a warning) when it cannot be made. */
  private async joinSandbox(sandbox: string): Promise<SandboxMemo | null> {
    try {
      return await this.sandboxReady(sandbox);
    } catch (err) {
      this.logger?.warn({ err, sandbox }, 'could not make the network sandbox; this task gets its own network namespace');
      return null;
    }
  }

  /** Waits for the one attempt concurrent callers share and gives its memo; a failed attempt is forgotten, so the
   * next caller tries again. */
  private async sandboxReady(sandbox: string): Promise<SandboxMemo> {
    const memo = (this.sandboxMemo ??= { ready: this.makeSandbox(sandbox) });
    try {
      await memo.ready;
      return memo;
    } catch (err) {
      this.forgetSandbox(memo);
      throw err;
    }
  }

  /** Only the memo the caller used: a concurrent caller may already have started the next attempt. */
  private forgetSandbox(memo: SandboxMemo): void {
    if (this.sandboxMemo === memo) this.sandboxMemo = null;
  }

  /** Running: done. Stopped: start it (a start that fails means remove and make anew). Missing: make it. */
  private async makeSandbox(name: string): Promise<void> {
    const found = await this.inspect(name);
    if (found?.state === 'running') return;
    if (found !== null) {
      try {
        await this.startSandbox(name);
        this.logger?.info({ sandbox: name }, 'network sandbox restarted');
        return;
      } catch (err) {
        this.logger?.warn({ err, sandbox: name }, 'could not start the network sandbox; making it anew');
        await this.remove(name);
      }
    }
    await this.ensurePauseImage();
    try {
      await this.call('sandbox create', (signal) =>
        this.docker.createContainer({ ...sandboxCreateOptions(name), abortSignal: signal }),
      );
    } catch (err) {
      // Another process (a worker with the same id starting meanwhile) made it first: start theirs.
      if (classifyRuntimeError(err).reason !== 'name-conflict') throw err;
    }
    await this.startSandbox(name);
    this.logger?.info({ sandbox: name, image: pauseImage }, 'network sandbox started');
  }

  private async startSandbox(name: string): Promise<void> {
    try {
      await this.call('sandbox start', (signal) => this.docker.getContainer(name).start({ abortSignal: signal }));
    } catch (err) {
      // 304: already running, which is what we wanted.
      if (statusOf(err) !== 304) throw err;
    }
  }

  /** The pause image, imported from the bytes in pause-image.ts when the daemon lacks it: nothing is pulled. */
  private async ensurePauseImage(): Promise<void> {
    if (await this.hasImage(pauseImage)) return;
    this.logger?.info({ image: pauseImage }, 'importing the network sandbox image');
    await this.call('image import', async (signal) => {
      // docker-modem pipes a stream as the request body; the answer is a progress stream like a pull's.
      const options = { repo: pauseImageRepo, tag: pauseImageTag, abortSignal: signal };
      const progress = await this.docker.importImage(Readable.from(pauseImageTar()), options);
      await consumePullProgress(progress);
    });
  }

  /**
   * minkube-busybox:latest, made from this host's static busybox (see demo-image.ts): one worker's import at a time
   * per process; a second task waiting for it finds the image there.
   */
  private async importDemoImage(): Promise<void> {
    this.demoImport ??= this.importDemoImageOnce().finally(() => {
      this.demoImport = null;
    });
    return this.demoImport;
  }

  private async importDemoImageOnce(): Promise<void> {
    if (await this.hasImage(demoImage)) return;
    await this.makeDemoImage(demoImageTag);
  }

  /** Imports the demo image as minkube-busybox:<tag> (tests use a tag of their own). */
  async makeDemoImage(tag: string): Promise<void> {
    const busybox = await findStaticBusybox();
    if (busybox === null) {
      throw new RuntimeFailure(
        'image-not-found',
        `image ${demoImage} is not present, and this host has no statically linked busybox to make it from (${busyboxCandidates.join(', ')}): apt-get install busybox-static, or run scripts/docker-setup.sh`,
      );
    }
    this.logger?.info({ image: `${demoImageRepo}:${tag}`, from: busybox }, 'making the demo image from the host busybox');
    const tar = demoImageTar(await readFile(busybox));
    await this.call('image import', async (signal) => {
      const options = { repo: demoImageRepo, tag, changes: [...demoImageChanges], abortSignal: signal };
      const progress = await this.docker.importImage(Readable.from([tar]), options);
      await consumePullProgress(progress);
    }, this.pullTimeoutMs);
  }

  /** Local image, else pull. A pull that fails for any reason but an unreachable daemon, a timeout or a full disk
   * means the image cannot be had: permanent. */
  private async ensureImage(image: string): Promise<void> {
    if (await this.hasImage(image)) return;
    if (image === demoImage) return this.importDemoImage();
    this.logger?.info({ image }, 'pulling image');
    try {
      await this.call('pull', (signal) => this.pull(image, signal), this.pullTimeoutMs);
    } catch (err) {
      const failure = classifyRuntimeError(err);
      if (failure.reason === 'daemon-unreachable' || failure.reason === 'timeout' || failure.reason === 'out-of-space') {
        throw failure;
      }
      throw new RuntimeFailure('image-not-found', `image ${image} is not present and could not be pulled: ${failure.message}`, {
        cause: err,
      });
    }
  }

  /** Whether the daemon has the image; any failure but "not found" is thrown (classified). */
  private async hasImage(image: string): Promise<boolean> {
    try {
      // Image inspect takes no signal; the call's deadline still bounds it.
      await this.call('image inspect', () => this.docker.getImage(image).inspect());
      return true;
    } catch (err) {
      if (classifyRuntimeError(err).reason !== 'image-not-found') throw err;
      return false;
    }
  }

  private async pull(image: string, signal: AbortSignal): Promise<void> {
    const stream = (await this.docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
    await consumePullProgress(stream);
  }

  async wait(id: string, opts: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    let exitCode: number | null;
    try {
      const result = await this.waitAnswer(id, opts.signal);
      exitCode = typeof result.StatusCode === 'number' ? result.StatusCode : null;
    } catch (err) {
      throw this.failure('wait', err);
    }
    // The wait's answer has only the code: whether the OOM killer sent the SIGKILL behind a 137 is in the inspect.
    if (exitCode !== 137) return { exitCode };
    const info = await this.inspect(id).catch(() => null);
    return info?.oomKilled === true ? { exitCode, oomKilled: true } : { exitCode };
  }

  /**
   * POST /containers/{id}/wait, its body read to the end. Not dockerode's container.wait: the engine sends the answer's
   * headers at once and its body (the code) at the exit, and dockerode's modem then listens for the body's 'end' alone.
   * A connection cut in between (the engine restarting, a proxy dying) ends the body with 'aborted' and 'close', never
   * 'end' nor (with no listener) 'error', so that wait never settled and the task's exit was never seen again.
   */
  private waitAnswer(id: string, signal: AbortSignal | undefined): Promise<{ StatusCode?: unknown }> {
    const dial = { path: `/containers/${encodeURIComponent(id)}/wait?`, method: 'POST', isStream: true, options: {}, statusCodes: waitStatusCodes };
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(signal === undefined ? dial : { ...dial, abortSignal: signal }, (err: Error | null, res: unknown) => {
        if (err !== null && err !== undefined) {
          reject(err);
          return;
        }
        // An abort cuts the connection too: the caller hears of its abort, not of a cut.
        const fail = (why: Error): void => reject(signal?.aborted === true ? (signal.reason as Error) : why);
        const body = res as Readable;
        const chunks: Buffer[] = [];
        body.on('data', (chunk: Buffer) => chunks.push(chunk));
        body.once('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { StatusCode?: unknown });
          } catch (parseErr) {
            reject(parseErr as Error);
          }
        });
        body.once('error', fail);
        // After 'end' this changes nothing; before it, the connection was cut.
        body.once('close', () => fail(connectionCut(`docker wait ${id}`)));
      });
    });
  }

  async stop(id: string, timeoutMs: number, stopSignal?: NodeJS.Signals): Promise<void> {
    const t = Math.max(0, Math.ceil(timeoutMs / 1000));
    // The daemon sends the container's StopSignal (set by run), waits t seconds, then SIGKILL. An engine of API 1.42
    // or later also takes the signal on the call; an older one ignores the parameter and uses the container's.
    const opts = stopSignal === undefined ? { t } : { t, signal: stopSignal };
    try {
      await this.call('stop', (signal) => this.docker.getContainer(id).stop({ ...opts, abortSignal: signal }), t * 1000 + this.callTimeoutMs);
    } catch (err) {
      // 304: already stopped; 404: already gone. Both are what the caller wanted.
      if (statusOf(err) === 304 || statusOf(err) === 404) return;
      throw err;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.call('remove', (signal) => this.docker.getContainer(id).remove({ force: true, v: true, abortSignal: signal }));
    } catch (err) {
      // 409 here is "removal already in progress": someone else is doing what we asked.
      if (statusOf(err) === 404 || statusOf(err) === 409) return;
      throw err;
    }
  }

  /** docker exec, output discarded: the command's exit code (a health check of type exec). */
  async exec(id: string, command: string[], timeoutMs: number): Promise<number> {
    return this.call('exec', async () => {
      const exec = await this.docker.getContainer(id).exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      stream.resume();
      await new Promise<void>((resolve) => {
        stream.once('end', () => resolve());
        stream.once('close', () => resolve());
        stream.once('error', () => resolve());
      });
      const info = await exec.inspect();
      return info.ExitCode ?? 1;
    }, timeoutMs);
  }

  async inspect(id: string): Promise<ContainerInfo | null> {
    try {
      const info = await this.call('inspect', (signal) => this.docker.getContainer(id).inspect({ abortSignal: signal }));
      return containerInfoFrom(info);
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async list(labelFilter: Record<string, string>, opts: { brief?: boolean } = {}): Promise<ContainerInfo[]> {
    const label = Object.entries(labelFilter).map(([k, v]) => `${k}=${v}`);
    const found = await this.call('list', (signal) =>
      this.docker.listContainers({ all: true, filters: { label }, abortSignal: signal }),
    );
    // The list answer lacks exit codes and times: inspect each, a few at a time; one removed meanwhile is skipped.
    // Brief: a running container's list entry says all the caller needs. Inspecting each of them on every
    // reconciliation was most of what a busy worker asked of the daemon, and slowed its container starts.
    const infos = await mapBounded(found, limits.runtimeInspectConcurrencyMax, async (c) =>
      opts.brief === true && c.State === 'running' ? briefInfoFrom(c) : this.inspect(c.Id));
    return infos.filter((i): i is ContainerInfo => i !== null);
  }

  async logs(id: string, opts: { tailLines?: number } = {}): Promise<string> {
    const tail = Math.max(0, Math.floor(opts.tailLines ?? limits.runtimeLogTailLinesDefault));
    const raw: unknown = await this.call('logs', (signal) =>
      this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail, abortSignal: signal }),
    );
    return tailBytes(demuxDockerLogs(toBuffer(raw)), limits.runtimeLogBytesMax);
  }

  async followLogs(id: string, opts: { tailLines?: number; signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    const tail = Math.max(0, Math.floor(opts.tailLines ?? limits.runtimeLogTailLinesDefault));
    const { signal } = opts;
    // The request's own deadline covers only the answer's headers; the stream then lasts until the container's end.
    const stream = await this.call('logs', (callSignal) => {
      const both = AbortSignal.any([callSignal, signal]);
      return this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: true, tail, abortSignal: both });
    });
    return demuxDockerStream(stream as AsyncIterable<Buffer>, signal);
  }

  async close(): Promise<void> {
    // dockerode holds no pooled connections of its own; in-flight waits end with their signals.
  }

  /** fn under a deadline: its signal is aborted and the call rejected when timeoutMs passes. */
  private async call<T>(op: string, fn: (signal: AbortSignal) => Promise<T>, timeoutMs = this.callTimeoutMs): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new RuntimeFailure('timeout', `docker ${op} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([fn(controller.signal), deadline]);
    } catch (err) {
      throw this.failure(op, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(op: string, err: unknown): RuntimeFailure {
    if (err instanceof RuntimeFailure) return err;
    const failure = classifyRuntimeError(err);
    return new RuntimeFailure(failure.reason, `docker ${op}: ${failure.message}`, { cause: err });
  }
}

const waitStatusCodes = { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' };

/** A cut connection as Node reports one (ECONNRESET), so that it is classified as the daemon unreachable. */
function connectionCut(what: string): Error {
  return Object.assign(new Error(`${what}: the connection to Docker ended before the answer did`), { code: 'ECONNRESET' });
}

function sandboxCreateOptions(name: string): Docker.ContainerCreateOptions {
  return {
    name,
    Image: pauseImage,
    Cmd: [pauseCommand],
    Labels: { [sandboxLabel]: name },
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      NetworkMode: 'none',
      // Back after a daemon restart or a crash; gone for good only when someone stops or removes it.
      RestartPolicy: { Name: 'unless-stopped' },
      Memory: sandboxMemoryBytes,
      // The program writes nothing; a small bound anyway.
      LogConfig: { Type: 'json-file', Config: { 'max-size': '64k', 'max-file': '1' } },
    },
  };
}

/** The daemon's words when a task cannot join the sandbox: it was removed, or it is not running. */
function sandboxGone(err: unknown, sandbox: string): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /cannot join network of a non running container/i.test(message) || (/no such container/i.test(message) && message.includes(sandbox));
}

function statusOf(err: unknown): number | undefined {
  const cause = err instanceof RuntimeFailure ? err.cause : err;
  const status = (cause as { statusCode?: unknown } | null | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's zero time ("0001-01-01T00:00:00Z") means "never". */
function epochMs(iso: string | undefined): number | undefined {
  if (iso === undefined || iso === '') return undefined;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

function stateFrom(status: string): ContainerState {
  switch (status) {
    case 'created':
      return 'created';
    case 'running':
    case 'paused':
    case 'restarting':
      return 'running';
    default: // exited, dead, removing
      return 'exited';
  }
}

/** A running container as `docker ps` shows it: no start time (the list answer has only the creation's second). */
export function briefInfoFrom(c: Docker.ContainerInfo): ContainerInfo {
  return {
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    image: c.Image,
    labels: { ...(c.Labels ?? {}) },
    state: 'running',
    exitCode: null,
  };
}

export function containerInfoFrom(info: Docker.ContainerInspectInfo): ContainerInfo {
  const state = stateFrom(info.State.Status);
  const result: ContainerInfo = {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    labels: { ...(info.Config.Labels ?? {}) },
    state,
    exitCode: state === 'exited' ? info.State.ExitCode : null,
    oomKilled: info.State.OOMKilled,
  };
  const startedAt = epochMs(info.State.StartedAt);
  if (startedAt !== undefined) result.startedAt = startedAt;
  const finishedAt = state === 'exited' ? epochMs(info.State.FinishedAt) : undefined;
  if (finishedAt !== undefined) result.finishedAt = finishedAt;
  return result;
}

/**
 * Docker multiplexes non-TTY logs as frames: [stream type (0, 1, 2), 0, 0, 0, length uint32 BE] then the payload.
 * Frames are concatenated in order, so stdout and stderr stay interleaved as written. A stream that does not start
 * with a valid header (a TTY container) is returned as it is.
 */
export function demuxDockerLogs(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const type = buf[pos];
    const validHeader =
      pos + 8 <= buf.length && (type === 0 || type === 1 || type === 2) && buf[pos + 1] === 0 && buf[pos + 2] === 0 && buf[pos + 3] === 0;
    if (!validHeader) {
      parts.push(buf.subarray(pos));
      break;
    }
    const length = buf.readUInt32BE(pos + 4);
    parts.push(buf.subarray(pos + 8, Math.min(buf.length, pos + 8 + length)));
    pos += 8 + length;
  }
  return Buffer.concat(parts);
}

/**
 * demuxDockerLogs over a stream, a frame at a time as they arrive (a frame's header or payload may span chunks). A
 * stream that does not start with a valid header passes through as it is. Ends quietly when the signal aborts.
 */
export async function* demuxDockerStream(stream: AsyncIterable<Buffer>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let pending: Buffer = Buffer.alloc(0);
  let raw = false;
  try {
    for await (const chunk of stream) {
      if (raw) {
        yield chunk;
        continue;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      let pos = 0;
      while (pos + 8 <= pending.length) {
        const type = pending[pos];
        if (!((type === 0 || type === 1 || type === 2) && pending[pos + 1] === 0 && pending[pos + 2] === 0 && pending[pos + 3] === 0)) {
          raw = true;
          break;
        }
        const end = pos + 8 + pending.readUInt32BE(pos + 4);
        if (end > pending.length) break;
        out.push(pending.subarray(pos + 8, end));
        pos = end;
      }
      if (raw) out.push(pending.subarray(pos));
      pending = raw ? Buffer.alloc(0) : pending.subarray(pos);
      if (out.length > 0) yield Buffer.concat(out);
    }
    // A stream that ended inside a frame, or shorter than a header.
    if (pending.length > 0) yield demuxDockerLogs(pending);
  } catch (err) {
    if (signal?.aborted === true) return;
    throw classifyRuntimeError(err);
  }
}

function toBuffer(raw: unknown): Buffer {
  if (Buffer.isBuffer(raw)) return raw;
  if (typeof raw === 'string') return Buffer.from(raw);
  // docker-modem parses a body that happens to be JSON; give the text back.
  return Buffer.from(raw === undefined || raw === null ? '' : JSON.stringify(raw));
}

/** Reads a pull's progress stream to its end; rejects with the daemon's error line if it sends one. Keeps nothing
 * else, so a large pull's progress costs no memory. */
export async function consumePullProgress(stream: NodeJS.ReadableStream): Promise<void> {
  let pending = '';
  let failure: string | undefined;
  const scan = (line: string): void => {
    if (failure !== undefined || !line.includes('"error')) return;
    try {
      const parsed = JSON.parse(line) as { error?: unknown; errorDetail?: { message?: unknown } };
      const message = parsed.errorDetail?.message ?? parsed.error;
      if (typeof message === 'string') failure = message;
    } catch {
      // a progress line we cannot read is not a failure
    }
  };
  for await (const chunk of stream) {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    lines.forEach(scan);
  }
  scan(pending);
  if (failure !== undefined) throw new Error(failure);
}

async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
