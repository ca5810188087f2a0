// Plain TCP connections to a test server on loopback, kept so that afterEach can destroy whatever a test left open
// (a paused client that never reads, say).
import { connect, type Socket } from 'node:net';

export class RawSockets {
  private readonly open_: Socket[] = [];

  /** Resolves once connected to 127.0.0.1:port. */
  open(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
      this.open_.push(s);
    });
  }

  destroyAll(): void {
    for (const s of this.open_.splice(0)) s.destroy();
  }
}
