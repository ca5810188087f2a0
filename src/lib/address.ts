// host:port parsing for the addresses of the cluster config, and whether this host lets a node listen on one.
import { createServer } from 'node:net';

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}

/** Listens on the address for a moment: null when that worked, else the system's error (EADDRINUSE, ...). */
export function tryListen(address: string): Promise<NodeJS.ErrnoException | null> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/**
 * An address as a key that two spellings of one endpoint share: the host in lower case, `localhost` as 127.0.0.1
 * and `[::1]`/`::1` alike.
 */
export function endpointKey(address: string): string {
  const at = address.lastIndexOf(':');
  let host = (at < 0 ? address : address.slice(0, at)).toLowerCase();
  const port = at < 0 ? '' : address.slice(at + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === 'localhost') host = '127.0.0.1';
  return `${host}:${port}`;
}

/**
 * The source address a node's outgoing connections bind, from its own host:port: its IPv4 loopback host (127.x.y.z),
 * so that nodes sharing one host can be cut from each other by address (iptables, a test's partition), or undefined
 * to let the system choose (any other host: a name, a wildcard, IPv6, a real interface).
 */
export function loopbackSourceOf(address: string): string | undefined {
  const { host } = splitHostPort(address);
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ? host : undefined;
}
