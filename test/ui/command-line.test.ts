// The dashboard's task form splits its Command field as the CLI splits --health-exec: ui/lib.js keeps a copy of
// src/cli/services.ts splitCommandLine (the page is served as written, it cannot import the TypeScript), and this
// holds the two to the same answers, a quote left open included.
import { describe, expect, it } from 'vitest';
import { splitCommandLine } from '../../src/cli/services.js';

type Split = (line: string) => string[] | string;
// A path the type checker does not follow: ui/ is plain browser JavaScript without types.
const uiLib = new URL('../../ui/lib.js', import.meta.url).href;
const ui = (await import(uiLib)) as { splitCommandLine: Split; splitCommand: (line: string) => string[] };

const cases: [string, string[] | string][] = [
  ['test -f /tmp/ready', ['test', '-f', '/tmp/ready']],
  ['  spaced   out  ', ['spaced', 'out']],
  ['sh -c "echo hi; sleep 1"', ['sh', '-c', 'echo hi; sleep 1']],
  [`'single $X' "dbl \\$X" a\\ b`, ['single $X', 'dbl $X', 'a b']],
  [`pre"fix b"'c d'`, ['prefix bc d']],
  [`""`, ['']],
  ['', []],
  ['echo "unterminated', 'the double quote at character 6 is not closed'],
  ["echo 'open", 'the single quote at character 6 is not closed'],
  [`sh -c "a \\" b`, 'the double quote at character 7 is not closed'],
];

describe("the dashboard's command splitter and the CLI's", () => {
  it.each(cases)('%j -> %j, in both', (line, answer) => {
    expect(splitCommandLine(line)).toEqual(answer);
    expect(ui.splitCommandLine(line)).toEqual(answer);
  });

  it("the form's splitter refuses a quote left open, saying where", () => {
    expect(() => ui.splitCommand('echo "unterminated')).toThrow('INVALID_COMMAND: the double quote at character 6 is not closed');
    expect(ui.splitCommand('echo "a b"')).toEqual(['echo', 'a b']);
  });
});
