// Two spellings of one endpoint share a key, so a member cannot be added at an address another member uses.
import { describe, expect, it } from 'vitest';
import { endpointKey } from '../../src/lib/address.js';

describe('endpointKey', () => {
  it('treats localhost as 127.0.0.1, ignores case and IPv6 brackets, and keeps ports apart', () => {
    expect(endpointKey('localhost:9201')).toBe(endpointKey('127.0.0.1:9201'));
    expect(endpointKey('LOCALHOST:9201')).toBe(endpointKey('127.0.0.1:9201'));
    expect(endpointKey('[::1]:80')).toBe(endpointKey('::1:80'));
    expect(endpointKey('Node-A.example:1')).toBe(endpointKey('node-a.example:1'));
    expect(endpointKey('127.0.0.1:9201')).not.toBe(endpointKey('127.0.0.1:9202'));
    expect(endpointKey('127.0.0.2:9201')).not.toBe(endpointKey('127.0.0.1:9201'));
  });

  it('reads an IPv4 address in every form the resolvers take, and an IPv4-mapped IPv6 one, as its dotted form', () => {
    for (const spelling of ['2130710276:25031', '0x7f000f04:25031', '0177.0.017.04:25031', '[::ffff:127.0.15.4]:25031', '[::FFFF:7f00:f04]:25031']) {
      expect(endpointKey(spelling), spelling).toBe('127.0.15.4:25031');
    }
    expect(endpointKey('127.1:5')).toBe('127.0.0.1:5');
    expect(endpointKey('[::2]:5')).not.toBe(endpointKey('[::1]:5'));
  });
});
