// LinePrefixer: `service logs` prints whole lines, each with its replica's prefix, however the bytes were cut.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinePrefixer } from '../../src/cli/service-logs.js';

describe('LinePrefixer', () => {
  it('prefixes each whole line and keeps a partial one for the next chunk', () => {
    const p = new LinePrefixer('t1@w1 | ');
    expect(p.push(Buffer.from('one\ntw'))).toBe('t1@w1 | one\n');
    expect(p.push(Buffer.from('o\n\nthree'))).toBe('t1@w1 | two\nt1@w1 | \n');
    expect(p.flush()).toBe('t1@w1 | three\n');
    expect(p.flush()).toBe('');
  });

  it('cut anywhere (a multi-byte character included), the output is the same', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom('a', 'é', '€', '\n', ' ', '🙂')), { maxLength: 40 }), fc.array(fc.nat(200), { maxLength: 5 }), (parts, cuts) => {
      const bytes = Buffer.from(parts.join(''));
      const whole = new LinePrefixer('> ');
      const expected = whole.push(bytes) + whole.flush();
      const p = new LinePrefixer('> ');
      let out = '';
      let at = 0;
      for (const cut of [...cuts].sort((a, b) => a - b).map((c) => Math.min(c, bytes.length))) {
        out += p.push(bytes.subarray(at, Math.max(at, cut)));
        at = Math.max(at, cut);
      }
      out += p.push(bytes.subarray(at)) + p.flush();
      expect(out).toBe(expected);
      expect(out.split('\n').filter((l) => l !== '').every((l) => l.startsWith('> '))).toBe(true);
    }));
  });
});
