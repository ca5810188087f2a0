// A small app run on a worker thread of its own, asked through messages (relay.ts decides when). The thread loads a
// module, makes the app with the function it names, and answers each request with the app's inject(). It starts with
// the first request and ends after limits.sideThreadIdleMs without one; a thread that fails or dies fails what it
// was asked, and the next request starts another.
import { Worker } from 'node:worker_threads';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';

export interface SideRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[]>>;
}

export interface SideAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>;
  readonly body: Uint8Array;
}

/** What a thread is made of: the module (a built JavaScript file's URL), its function making the app, and its data. */
export interface ThreadSpec<D> {
  readonly module: string;
  readonly exportName: string;
  /** Read when a thread starts; it crosses as a structured clone. */
  readonly data: () => D;
}

export interface SideThreadOptions {
  readonly idleMs?: number;
  readonly pendingMax?: number;
  readonly answerMsMax?: number;
}

/**
 * The thread's own code, plain CommonJS (it runs from the sources as from dist/, with no loader): the app's module is
 * imported by URL. A failure to make the app is answered to every request, and the main side ends the thread.
 */
const threadCode = `
const { parentPort, workerData } = require('node:worker_threads');
const made = import(workerData.module).then((m) => m[workerData.exportName](workerData.data));
made.catch(() => {});
const firstLine = (e) => String((e && e.message) || e).split('\\n')[0];
parentPort.on('message', async (m) => {
  let app;
  try {
    app = await made;
  } catch (e) {
    parentPort.postMessage({ id: m.id, failed: 'made', error: firstLine(e) });
    return;
  }
  try {
    const res = await app.inject({ method: m.method, url: m.url, headers: m.headers });
    const body = new Uint8Array(res.rawPayload);
    parentPort.postMessage({ id: m.id, status: res.statusCode, headers: res.headers, body }, [body.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, failed: 'answer', error: firstLine(e) });
  }
});
`;

type Reply = ({ id: number } & SideAnswer) | { id: number; failed: 'made' | 'answer'; error: string };

interface Waiting {
  resolve(a: SideAnswer): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class SideThread<D> {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly idleMs: number;
  private readonly pendingMax: number;
  private readonly answerMsMax: number;
  /** Threads started so far (tests: an idle one ended and another began). */
  started = 0;

  constructor(
    private readonly spec: ThreadSpec<D>,
    o: SideThreadOptions = {},
  ) {
    this.idleMs = o.idleMs ?? limits.sideThreadIdleMs;
    this.pendingMax = o.pendingMax ?? limits.sideThreadPendingMax;
    this.answerMsMax = o.answerMsMax ?? limits.sideThreadAnswerMsMax;
  }

  /** Whether a thread runs now. */
  get running(): boolean {
    return this.worker !== null;
  }

  answer(req: SideRequest): Promise<SideAnswer> {
    if (this.closed) return Promise.reject(new MinkubeError('NOT_READY', 'the node is shutting down'));
    if (this.waiting.size >= this.pendingMax) return Promise.reject(new MinkubeError('QUEUE_FULL', `${this.waiting.size} requests are waiting on this part of the API; retry later`));
    let worker: Worker;
    try {
      worker = this.worker ?? this.start();
    } catch (e) {
      return Promise.reject(new MinkubeError('INTERNAL', `this part of the API could not start: ${(e as Error).message}`));
    }
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const id = this.nextId++;
    return new Promise<SideAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new MinkubeError('NOT_READY', `this part of the API did not answer within ${this.answerMsMax} ms; retry later`));
        this.idleLater();
      }, this.answerMsMax);
      this.waiting.set(id, { resolve, reject, timer });
      worker.postMessage({ id, method: req.method, url: req.url, headers: req.headers });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stop(new MinkubeError('NOT_READY', 'the node is shutting down'));
  }

  private start(): Worker {
    const w = new Worker(threadCode, {
      eval: true,
      workerData: { module: this.spec.module, exportName: this.spec.exportName, data: this.spec.data() },
      resourceLimits: { maxOldGenerationSizeMb: limits.sideThreadHeapMbMax },
    });
    // The thread never keeps the process alive: a manager that is done exits with it running.
    w.unref();
    this.worker = w;
    this.started++;
    w.on('message', (m: Reply) => this.onReply(w, m));
    w.on('error', (e) => void this.ended(w, new MinkubeError('INTERNAL', `this part of the API failed: ${e.message.split('\n')[0]}`)));
    w.on('exit', (code) => void this.ended(w, new MinkubeError('INTERNAL', `this part of the API ended (exit code ${code})`)));
    return w;
  }

  private onReply(w: Worker, m: Reply): void {
    const waiting = this.waiting.get(m.id);
    if (waiting !== undefined) {
      this.waiting.delete(m.id);
      clearTimeout(waiting.timer);
      if ('failed' in m) waiting.reject(new MinkubeError('INTERNAL', `this part of the API failed: ${m.error}`));
      else waiting.resolve({ status: m.status, headers: m.headers, body: m.body });
    }
    // A thread that could not make its app answers nothing else: the next request starts another.
    if ('failed' in m && m.failed === 'made') void this.ended(w, new MinkubeError('INTERNAL', `this part of the API failed: ${m.error}`), true);
    else this.idleLater();
  }

  /** The thread `w` ended (or is to): what waited on it fails with `error`. */
  private async ended(w: Worker, error: Error, terminate = false): Promise<void> {
    if (this.worker !== w) return;
    this.worker = null;
    for (const [id, waiting] of this.waiting) {
      this.waiting.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    if (terminate) await w.terminate();
  }

  private idleLater(): void {
    if (this.waiting.size > 0 || this.worker === null || this.closed) return;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.stop(null), this.idleMs);
    this.idleTimer.unref();
  }

  private async stop(error: Error | null): Promise<void> {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const w = this.worker;
    if (w === null) return;
    if (error !== null) await this.ended(w, error, true);
    else if (this.waiting.size === 0) {
      this.worker = null;
      await w.terminate();
    }
  }
}
