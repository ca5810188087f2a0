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
