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
});
