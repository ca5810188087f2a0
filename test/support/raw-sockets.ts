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
