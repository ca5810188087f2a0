// The config keys of placement and DNS: managers[].dnsAddress, workers[].labels and capacity, scheduler.preemption.
import { describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';

const base = {
  managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1', dnsAddress: '127.0.0.1:8053' }],
  workers: [{ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', labels: { zone: 'a', 'disk.kind': 'ssd' }, capacity: { cpus: 2, memoryMb: 1024 } }],
  scheduler: { preemption: true },
};

const problems = (json: unknown): string => {
  try {
    parseClusterConfig(json, '/tmp');
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('placement and dns config', () => {
  it('accepts the keys and keeps them', () => {
    const c = parseClusterConfig(base, '/tmp');
    expect(c.managers[0]!.dnsAddress).toBe('127.0.0.1:8053');
    expect(c.workers[0]).toMatchObject({ labels: { zone: 'a', 'disk.kind': 'ssd' }, capacity: { cpus: 2, memoryMb: 1024 } });
    expect(c.scheduler).toEqual({ preemption: true });
    expect(parseClusterConfig({ managers: base.managers }, '/tmp').scheduler).toEqual({ preemption: false });
    // Either field alone: the other is the host's, when the worker starts.
    const cpusOnly = parseClusterConfig({ ...base, workers: [{ ...base.workers[0], capacity: { cpus: 2 } }] }, '/tmp');
    expect(cpusOnly.workers[0]!.capacity).toEqual({ cpus: 2 });
  });

  it('refuses a bad or duplicate dnsAddress, bad labels and capacity, unknown scheduler keys', () => {
    expect(problems({ ...base, managers: [{ ...base.managers[0], dnsAddress: 'nope' }] })).toMatch(/managers\[0\]\.dnsAddress: expected host:port/);
    expect(problems({ ...base, managers: [{ ...base.managers[0], dnsAddress: '127.0.0.1:8001' }] })).toMatch(/managers\[0\]\.dnsAddress: duplicate address/);
    expect(problems({ ...base, workers: [{ ...base.workers[0], labels: { 'bad key': 'x' } }] })).toMatch(/workers\[0\]\.labels\.bad key: not a valid label key \(a letter or digit/);
    expect(problems({ ...base, workers: [{ ...base.workers[0], labels: { zone: 'a b' } }] })).toMatch(/workers\[0\]\.labels\.zone: not a valid label value \(letters, digits/);
    // Every bad key, not only the first the schema names.
    const all = problems({ ...base, workers: [{ ...base.workers[0], labels: { 'k y': 'v', '-lead': 'v' } }] });
    expect(all).toMatch(/workers\[0\]\.labels\.k y: not a valid label key/);
    expect(all).toMatch(/workers\[0\]\.labels\.-lead: not a valid label key/);
    expect(problems({ ...base, workers: [{ ...base.workers[0], capacity: { cpus: -1, memoryMb: 1 } }] })).toMatch(/workers\[0\]\.capacity\.cpus/);
    expect(problems({ ...base, scheduler: { preempt: true } })).toMatch(/scheduler\.preempt: unknown key/);
  });
});
