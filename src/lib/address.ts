// host:port parsing for the addresses of the cluster config, and whether this host lets a node listen on one.
import { createServer, isIP } from 'node:net';

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
 * An address as a key that two spellings of one endpoint share: the host as the WHATWG URL parser writes it (lower
 * case; an IPv4 address in any form the system resolvers take, 2130706433, 0x7f000001, 127.1, as dotted decimal;
 * IPv6 compressed), `localhost` as 127.0.0.1, and an IPv4-mapped IPv6 address ([::ffff:127.0.0.1]) as its IPv4
 * address. A worker registering at another spelling of a live worker's address was given that worker's tasks.
 */
export function endpointKey(address: string): string {
  const at = address.lastIndexOf(':');
  let host = (at < 0 ? address : address.slice(0, at)).toLowerCase();
  const port = at < 0 ? '' : address.slice(at + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  try {
    host = new URL(`http://${host.includes(':') ? `[${host}]` : host}/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    // Not a host the URL parser takes: compared as written.
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped !== null) {
    const [hi, lo] = [Number.parseInt(mapped[1]!, 16), Number.parseInt(mapped[2]!, 16)];
    host = `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
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

const hostLabel = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * The host and port of an address a node asks its certificate to name (POST /v1/join, POST /v1/certs/renew): an IP
 * address or a host name, alone or with :port (IPv6 in brackets then), as sansForAddresses reads it; null when it is
 * none of those. A host name is RFC 1123's: dot-separated labels of letters, digits and '-' (not at a label's ends),
 * at most 63 characters a label and 253 in all, the last label not all digits (it would read as a mangled IPv4
 * address). No wildcard, no empty label, nothing else: every TLS client matches the host it dials against these.
 */
export function certAddressParts(address: string): { host: string; port: number | null } | null {
  if (isIP(address) !== 0) return { host: address, port: null };
  const bracketed = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(address);
  if (bracketed !== null) return isIP(bracketed[1]!) === 6 ? withPort(bracketed[1]!, bracketed[2]) : null;
  const colon = address.lastIndexOf(':');
  const host = colon < 0 ? address : address.slice(0, colon);
  const port = colon < 0 ? undefined : address.slice(colon + 1);
  if (port !== undefined && !/^\d{1,5}$/.test(port)) return null;
  if (isIP(host) === 4) return withPort(host, port);
  const labels = host.split('.');
  if (host.length > 253 || !labels.every((l) => hostLabel.test(l)) || /^\d+$/.test(labels.at(-1)!)) return null;
  return withPort(host, port);
}

function withPort(host: string, port: string | undefined): { host: string; port: number | null } | null {
  if (port === undefined) return { host, port: null };
  const n = Number(port);
  return n >= 1 && n <= 65535 ? { host, port: n } : null;
}
