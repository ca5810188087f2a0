// A HEAD over HTTP/1.1 or HTTP/2 (h2c, prior knowledge), for routes whose GET never ends by itself: it resolves with
// the answer once it has ended, and fails if none came within timeoutMs (the HEAD hung).
import { request } from 'node:http';
import { connect } from 'node:http2';

export interface HeadAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Body bytes received: a HEAD's answer has none. */
  bodyBytes: number;
}

export function head(url: string, path: string, opts: { http2?: boolean; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HeadAnswer> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  return new Promise((resolve, reject) => {
    let bodyBytes = 0;
    let done = (): void => undefined;
    const timer = setTimeout(() => {
      done();
      reject(new Error(`HEAD ${path} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (status: number, headers: HeadAnswer['headers']): void => {
      clearTimeout(timer);
      done();
      resolve({ status, headers, bodyBytes });
    };
    if (opts.http2 === true) {
      const session = connect(url);
      done = () => session.close();
      session.on('error', reject);
      const stream = session.request({ ':method': 'HEAD', ':path': path, ...opts.headers });
      let answer: HeadAnswer['headers'] = {};
      stream.on('response', (h) => (answer = { ...h }));
      stream.on('data', (d: Buffer) => (bodyBytes += d.length));
      stream.on('end', () => finish(Number(answer[':status']), answer));
      stream.on('error', reject);
      stream.end();
      return;
    }
    const req = request(`${url}${path}`, { method: 'HEAD', headers: { connection: 'close', ...opts.headers } }, (res) => {
      res.on('data', (d: Buffer) => (bodyBytes += d.length));
      res.on('end', () => finish(res.statusCode ?? 0, res.headers));
    });
    done = () => req.destroy();
    req.on('error', reject);
    req.end();
  });
}
