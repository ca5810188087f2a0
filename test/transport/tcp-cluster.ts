// Helpers for TCP transport tests and benchmarks: free loopback ports, a logger that keeps its lines, and a cluster
// of TcpTransports that all know each other.
import { pino, type Logger } from 'pino';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { TcpTransport, type TcpTransportOptions } from '../../src/transport/tcp.js';
import { freePorts } from '../support/wait.js';

export { freePorts };

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger that keeps every line (debug and up) in memory. */
export function memoryLogger(name: string): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug', base: { node: name } }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

export interface TcpCluster {
  readonly ids: NodeId[];
  readonly addresses: string[];
  readonly transports: TcpTransport[];
  readonly logs: LogLine[][];
  /** Closes node i (if open) and starts it again on the same address. */
  restart(i: number): Promise<TcpTransport>;
  close(): Promise<void>;
}

export interface TcpClusterOptions {
  readonly host?: string;
  /** Extra peers (id -> address) known to node i only: lets a test impersonate a peer without disturbing real ones. */
  readonly extraPeers?: (i: number) => ReadonlyMap<NodeId, string>;
  readonly overrides?: Partial<Omit<TcpTransportOptions, 'id' | 'listen' | 'peers' | 'logger'>>;
  readonly quiet?: boolean;
}

export async function startTcpCluster(n: number, o: TcpClusterOptions = {}): Promise<TcpCluster> {
  const host = o.host ?? '127.0.0.1';
  const ports = await freePorts(n, host);
  const ids = Array.from({ length: n }, (_, i) => nodeId(`n${i + 1}`));
  const addresses = ports.map((p) => `${host}:${p}`);
  const logs: LogLine[][] = ids.map(() => []);
  const start = (i: number): Promise<TcpTransport> => {
    const peers = new Map<NodeId, string>(ids.flatMap((id, j) => (j === i ? [] : [[id, addresses[j]!] as const])));
    for (const [id, address] of o.extraPeers?.(i) ?? []) peers.set(id, address);
    const { logger, lines } = o.quiet === true ? { logger: pino({ level: 'silent' }), lines: [] } : memoryLogger(ids[i]!);
    logs[i] = lines;
    return TcpTransport.start({ id: ids[i]!, listen: addresses[i]!, peers, logger, localAddress: host, reconnectMaxMs: 200, ...o.overrides });
  };
  const transports = await Promise.all(ids.map((_, i) => start(i)));
  return {
    ids,
    addresses,
    transports,
    logs,
    restart: async (i) => {
      await transports[i]!.close();
      transports[i] = await start(i);
      return transports[i];
    },
    close: async () => void (await Promise.all(transports.map((t) => t.close()))),
  };
}
