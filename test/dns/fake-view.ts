// A DnsView built from plain data, for the answer function's and the socket server's tests.
import type { DnsManager, DnsService, DnsTask, DnsView } from '../../src/manager/dns/view.js';

export interface FakeViewData {
  services?: Record<string, { ports?: string[]; healthy?: DnsTask[] }>;
  tasks?: DnsTask[];
  managers?: DnsManager[];
  leaderId?: string | null;
  serial?: number;
  catchingUp?: boolean;
}

export function task(id: string, ip: string | null, ports: Record<string, number> = {}): DnsTask {
  return { id, address: ip === null ? null : { family: ip.includes(':') ? 6 : 4, ip }, ports: new Map(Object.entries(ports)) };
}

export class FakeView implements DnsView {
  constructor(public data: FakeViewData) {}

  service(name: string): DnsService | undefined {
    const s = this.data.services?.[name];
    return s === undefined ? undefined : { portNames: new Set(s.ports ?? []), healthy: s.healthy ?? [] };
  }

  task(id: string): DnsTask | undefined {
    return this.data.tasks?.find((t) => t.id === id);
  }

  managers(): readonly DnsManager[] {
    return this.data.managers ?? [];
  }

  leaderId(): string | null {
    return this.data.leaderId ?? null;
  }

  serial(): number {
    return this.data.serial ?? 1;
  }

  catchingUp(): boolean {
    return this.data.catchingUp ?? false;
  }
}

/** Three replicas of `web` (http), one of `db` with no healthy replica, three managers with m2 leading. */
export function sampleView(): FakeView {
  const a = task('ta', '127.0.0.1', { http: 20001 });
  const b = task('tb', '127.0.0.2', { http: 20002 });
  const c = task('tc', '127.0.0.1', { http: 20003 });
  return new FakeView({
    services: { web: { ports: ['http'], healthy: [a, b, c] }, db: { ports: ['pg'], healthy: [] } },
    tasks: [a, b, c, task('tnoports', '127.0.0.3')],
    managers: [
      { id: 'm1', address: { family: 4, ip: '127.0.0.1' }, apiPort: 8001 },
      { id: 'm2', address: { family: 4, ip: '127.0.0.2' }, apiPort: 8002 },
      { id: 'm3', address: { family: 4, ip: '127.0.0.3' }, apiPort: 8003 },
    ],
    leaderId: 'm2',
    serial: 42,
  });
}
