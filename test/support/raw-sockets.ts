// Plain TCP connections to a test server on loopback, kept so that afterEach can destroy whatever a test left open
// (a paused client that never reads, say).
import { connect, type Socket } from 'node:net';

export class RawSockets {
  private readonly open_: Socket[] = [];

  /** Resolves once connected to host:port (127.0.0.1 by default). */
  open(port: number, host = '127.0.0.1'): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => resolve(s));
      s.once('error', reject);
      this.open_.push(s);
    });
  }

  destroyAll(): void {
    for (const s of this.open_.splice(0)) s.destroy();
  }
}

/** What a raw connection has read (latin1, so any byte survives) and whether the server has closed it. */
export interface SocketReading {
  readonly data: () => string;
  readonly closed: () => boolean;
}

/** Starts reading `socket`: everything it receives, and its close; its errors are the test's to see by the close. */
export function readAll(socket: Socket): SocketReading {
  let data = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (data += d));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  return { data: () => data, closed: () => closed };
}
