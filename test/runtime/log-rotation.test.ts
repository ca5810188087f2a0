// The process runtime's follower cut at line ends (WholeLines): what it shows of a log is whole lines, whatever its
// reads' sizes, and a skip of what no file keeps any more never splices two lines into one.
import { describe, expect, it } from 'vitest';
import { followSource, WholeLines } from '../../src/runtime/log-rotation.js';

const b = (s: string): Buffer => Buffer.from(s);
const s = (x: Buffer): string => x.toString();

describe('WholeLines', () => {
  it('gives out whole lines, holding an unended one until its end comes', () => {
    const w = new WholeLines(1024);
    expect(s(w.push(b('one\ntw')))).toBe('one\n');
    expect(s(w.push(b('o')))).toBe('');
    expect(s(w.push(b('\nthree\nfo')))).toBe('two\nthree\n');
    // Caught up (or the source ended): the line so far is let go.
    expect(s(w.release())).toBe('fo');
    expect(s(w.push(b('ur\n')))).toBe('ur\n');
  });

  it('at a skip drops what it held and what follows up to the next line end: no line is spliced from two', () => {
    const w = new WholeLines(1024);
    expect(s(w.push(b('line 1\nline 2\nline 3 (cut')))).toBe('line 1\nline 2\n');
    expect(s(w.skip())).toBe('');
    // What follows the skip may start mid-line.
    expect(s(w.push(b('of line 9)')))).toBe('');
    expect(s(w.push(b('\nline 10\nline 11\n')))).toBe('line 10\nline 11\n');
  });

  it('a line whose start was already shown is ended where the skip cut it', () => {
    const w = new WholeLines(1024);
    w.push(b('a\nprompt: '));
    expect(s(w.release())).toBe('prompt: ');
    expect(s(w.skip())).toBe('\n');
    expect(s(w.push(b('tail of something\nnext\n')))).toBe('next\n');
  });

  it('lets a held line longer than its bound go in pieces', () => {
    const w = new WholeLines(4);
    expect(s(w.push(b('abc')))).toBe('');
    expect(s(w.push(b('def')))).toBe('abcdef');
    expect(s(w.push(b('g\n')))).toBe('g\n');
  });
});

describe('followSource', () => {
  it('says when the follower skipped: a whole generation behind, or behind the start of .1; not when it read .1 to its end', () => {
    const r = { count: 2, base: 500, end: 1500 };
    expect(followSource({ generation: 0, offset: 900 }, r)).toMatchObject({ skipped: true, at: { generation: 1, offset: 500 } });
    expect(followSource({ generation: 1, offset: 100 }, r)).toMatchObject({ skipped: true, at: { generation: 1, offset: 500 } });
    expect(followSource({ generation: 1, offset: 700 }, r)).toMatchObject({ skipped: false, at: { generation: 1, offset: 700 }, oldBytes: 800 });
    expect(followSource({ generation: 1, offset: 1500 }, r)).toMatchObject({ skipped: false, at: { generation: 2, offset: 0 } });
    expect(followSource({ generation: 2, offset: 10 }, r)).toMatchObject({ skipped: false });
  });
});
