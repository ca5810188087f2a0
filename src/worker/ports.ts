// Host ports for tasks' named ports: a worker hands each a free port of its range (portRange, default 20000-32000),
// never one port to two of its tasks, and takes it back when the task ends. "Free" is checked by binding it for a
// moment, so a port another program (or another worker on the same host) holds is skipped.
import { createServer } from 'node:net';
import type { AssignedPort, PortSpec } from '../contracts/task-model.js';
import { MinkubeError } from '../lib/errors.js';
import type { Random } from '../lib/random.js';

export interface PortRange {
  readonly min: number;
  readonly max: number;
}

export const defaultPortRange: PortRange = { min: 20000, max: 32000 };

/** Tries to bind every address of the host on `port`; true when nobody holds it. */
export type PortProbe = (port: number) => Promise<boolean>;

export const bindProbe: PortProbe = (port) =>
  new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });

/** MINKUBE_PORT_<NAME> (upper case, '-' as '_'), and PORT for the first. */
export function portEnv(ports: readonly AssignedPort[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of ports) env[`MINKUBE_PORT_${p.name.toUpperCase().replace(/-/g, '_')}`] = String(p.hostPort);
  if (ports[0] !== undefined) env.PORT = String(ports[0].hostPort);
  return env;
}

/** The label that keeps a container's ports across a worker restart: "http=20001,admin=20002". */
export const labelPorts = 'minkube.ports';

export function portsLabel(ports: readonly AssignedPort[]): string {
  return ports.map((p) => `${p.name}=${p.hostPort}`).join(',');
}

export class PortAllocator {
  /** hostPort -> the task holding it. */
  private readonly held = new Map<number, string>();
  private readonly byTask = new Map<string, AssignedPort[]>();

  constructor(
    private readonly range: PortRange,
    /** The host part of the addresses handed out (the worker's API host). */
    private readonly host: string,
    private readonly random: Random,
    private readonly probe: PortProbe = bindProbe,
  ) {
    if (!(range.min >= 1 && range.max <= 65535 && range.min <= range.max)) throw new MinkubeError('CONFIG_INVALID', `portRange ${range.min}-${range.max} is not a range of ports`);
  }

  get inUse(): number {
    return this.held.size;
  }

  /** The task's ports (the same ones again if it holds some); QUEUE_FULL when the range has too few free. */
  async allocate(taskId: string, specs: readonly PortSpec[]): Promise<AssignedPort[]> {
    const known = this.byTask.get(taskId);
    if (known !== undefined) return known;
    const out: AssignedPort[] = [];
    try {
      for (const spec of specs) out.push(await this.one(taskId, spec.name));
    } catch (err) {
      for (const p of out) this.held.delete(p.hostPort);
      throw err;
    }
    this.byTask.set(taskId, out);
    return out;
  }

  /** Marks ports a re-adopted container already holds (from its label). */
  adopt(taskId: string, label: string | undefined): AssignedPort[] {
    if (label === undefined || label === '') return [];
    const out: AssignedPort[] = [];
    for (const part of label.split(',')) {
      const [name, text] = part.split('=');
      const port = Number(text);
      if (name === undefined || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      this.held.set(port, taskId);
      out.push({ name, hostPort: port, address: `${this.host}:${port}` });
    }
    this.byTask.set(taskId, out);
    return out;
  }

  release(taskId: string): void {
    const ports = this.byTask.get(taskId);
    if (ports === undefined) return;
    this.byTask.delete(taskId);
    for (const p of ports) if (this.held.get(p.hostPort) === taskId) this.held.delete(p.hostPort);
  }

  private async one(taskId: string, name: string): Promise<AssignedPort> {
    const size = this.range.max - this.range.min + 1;
    // From a random point, so that workers sharing a host (and a range) seldom race for the same port.
    const start = this.random.int(size);
    let probes = 0;
    for (let i = 0; i < size && probes < 64; i++) {
      const port = this.range.min + ((start + i) % size);
      if (this.held.has(port)) continue;
      probes++;
      this.held.set(port, taskId);
      if (await this.probe(port)) return { name, hostPort: port, address: `${this.host}:${port}` };
      this.held.delete(port);
    }
    // The ports this worker's tasks do not hold were all tried (or 64 of them) and found in use by something else.
    const others = probes === 0 ? '' : `; the ${probes} other${probes === 1 ? '' : 's'} tried ${probes === 1 ? 'is' : 'are'} in use outside this worker's tasks (another process on the host)`;
    throw new MinkubeError('QUEUE_FULL', `no free port in ${this.range.min}-${this.range.max} (${this.held.size} held by this worker's tasks${others})`);
  }
}
