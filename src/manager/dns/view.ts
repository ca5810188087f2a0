// What the DNS server answers from: a read-only picture of this manager's applied state (services and their
// healthy replicas, placed tasks, the managers and the leader). The pure answer function reads only this.

/** One address a name resolves to: an IPv4 literal (A) or an IPv6 one (AAAA). */
export type DnsAddress = { readonly family: 4 | 6; readonly ip: string };

export interface DnsTask {
  readonly id: string;
  /** The host the task runs on (its worker's, or its ports' address host); null when not an IP literal. */
  readonly address: DnsAddress | null;
  /** Host ports by port name. */
  readonly ports: ReadonlyMap<string, number>;
}

export interface DnsService {
  /** The port names its replicas declare (known names without a healthy replica answer NODATA, not NXDOMAIN). */
  readonly portNames: ReadonlySet<string>;
  /** Healthy replicas of the current and older versions alike, in task id order. */
  readonly healthy: readonly DnsTask[];
}

export interface DnsManager {
  readonly id: string;
  readonly address: DnsAddress | null;
  readonly apiPort: number;
}

export interface DnsView {
  /** Lower-case service name -> service. */
  service(name: string): DnsService | undefined;
  /** A task placed on a worker (scheduled or running), by lower-case id. */
  task(id: string): DnsTask | undefined;
  managers(): readonly DnsManager[];
  leaderId(): string | null;
  /** The SOA serial: this manager's applied index (mod 2^32). */
  serial(): number;
  /**
   * True until this manager has caught up with the cluster once since it started: before that its state may be what
   * it held when it stopped, so every name in the zone answers SERVFAIL and a resolver asks another manager.
   */
  catchingUp(): boolean;
}

const ipv4Pattern = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

/** The address of a `host:port`'s host when it is an IP literal ('localhost' counts as 127.0.0.1), else null. */
export function addressOfHostPort(hostPort: string): DnsAddress | null {
  const i = hostPort.lastIndexOf(':');
  const host = i < 0 ? hostPort : hostPort.slice(0, i);
  return addressOfHost(host);
}

export function addressOfHost(host: string): DnsAddress | null {
  if (host === 'localhost') return { family: 4, ip: '127.0.0.1' };
  if (ipv4Pattern.test(host)) return { family: 4, ip: host };
  const inner = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (/^[0-9A-Fa-f:.]+$/.test(inner) && inner.includes(':')) return { family: 6, ip: inner };
  return null;
}

/** The port of a `host:port`. */
export function portOfHostPort(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
}
