// A node whose dials fail because it is out of file descriptors says so at warn, naming the cause, rather than only
// that a peer cannot be reached (at info, once): every peer looks unreachable to it, and nothing else would tell.
// node:net's connect is wrapped so that a dial fails with EMFILE, as it does in a process at its descriptor limit.
import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger } from './tcp-cluster.js';

const failing = { code: null as string | null };

vi.mock('node:net', async (importOriginal) => {
  const net = await importOriginal<typeof import('node:net')>();
  const connect = (...args: Parameters<typeof net.connect>): Socket => {
    const code = failing.code;
    if (code === null) return net.connect(...args);
    const socket = new net.Socket();
    process.nextTick(() => socket.destroy(Object.assign(new Error(`connect ${code}`), { code })));
    return socket;
  };
  return { ...net, connect, default: { ...net, connect } };
});

describe('dialing while out of file descriptors', () => {
  const started: TcpTransport[] = [];
  afterEach(async () => {
    failing.code = null;
    await Promise.all(started.splice(0).map((t) => t.close()));
  });

  for (const code of ['EMFILE', 'ENFILE']) {
    it(`${code}: warns that the process is out of descriptors, naming what to raise`, async () => {
      const [p1, p2] = await freePorts(2);
      const log = memoryLogger('n1');
      failing.code = code;
      const t = await TcpTransport.start({ id: nodeId('n1'), listen: `127.0.0.1:${p1}`, peers: new Map([[nodeId('n2'), `127.0.0.1:${p2}`]]), logger: log.logger, reconnectMaxMs: 50 });
      started.push(t);
      const warned = await waitFor('the warning', () => log.lines.find((l) => l.msg.includes('out of file descriptors')), 5000);
      expect(warned).toMatchObject({ level: 40, err: code });
      expect(warned.msg).toContain('ulimit -n');
      // Said again only every 30 failures, not on each.
      await waitFor('more failed dials', () => log.lines.filter((l) => l.msg.startsWith('cannot reach peer')).length >= 5, 5000);
      expect(log.lines.filter((l) => l.level === 40).length).toBe(1);
    });
  }

  it('a refused dial is still the plain "cannot reach peer" at info', async () => {
    const [p1, p2] = await freePorts(2);
    const log = memoryLogger('n1');
    const t = await TcpTransport.start({ id: nodeId('n1'), listen: `127.0.0.1:${p1}`, peers: new Map([[nodeId('n2'), `127.0.0.1:${p2}`]]), logger: log.logger, reconnectMaxMs: 50 });
    started.push(t);
    const first = await waitFor('the first failure', () => log.lines.find((l) => l.msg.startsWith('cannot reach peer')), 5000);
    expect(first).toMatchObject({ level: 30, err: 'ECONNREFUSED' });
    expect(log.lines.some((l) => l.msg.includes('out of file descriptors'))).toBe(false);
  });
});
