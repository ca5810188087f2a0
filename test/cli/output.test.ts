// What the CLI tells the user about a thrown value: a MinkubeError as it is, one from another copy of the errors
// module (a daemon's bundle, or the sources under tsx) by its name and code, anything else as INTERNAL.
import { expect, it } from 'vitest';
import { asMinkubeError, commandText, formatTable, printError, printJson, printValue, terminalText, visible } from '../../src/cli/output.js';
import { MinkubeError } from '../../src/lib/errors.js';

it('keeps the code of a MinkubeError, whichever copy of the class made it', () => {
  const own = new MinkubeError('LISTEN_FAILED', 'cannot listen on 127.0.0.1:1 (apiAddress): permission denied');
  expect(asMinkubeError(own)).toBe(own);
  const foreign = Object.assign(new Error('the data directory /d is in use by another process'), { name: 'MinkubeError', code: 'DATA_DIR_IN_USE' });
  expect(asMinkubeError(foreign)).toMatchObject({ code: 'DATA_DIR_IN_USE', message: 'the data directory /d is in use by another process' });
});

it('anything else is INTERNAL with its message; a made-up code is not trusted', () => {
  expect(asMinkubeError(new Error('boom'))).toMatchObject({ code: 'INTERNAL', message: 'boom' });
  expect(asMinkubeError('plain')).toMatchObject({ code: 'INTERNAL', message: 'plain' });
  const madeUp = Object.assign(new Error('x'), { name: 'MinkubeError', code: 'NOT_A_CODE' });
  expect(asMinkubeError(madeUp)).toMatchObject({ code: 'INTERNAL', message: 'x' });
});

it('prints the hints it is given below the error, each on its own line; none by default', () => {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stderr.write;
  try {
    printError(new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token'), ['the token sent was refused', 'a second line']);
    printError(new MinkubeError('UNREACHABLE', 'cannot reach https://127.0.0.1:8001/v1/cluster (ECONNREFUSED)'));
  } finally {
    process.stderr.write = write;
  }
  expect(written[0]).toBe('error: UNAUTHENTICATED: unknown, revoked or expired token\n  the token sent was refused\n  a second line\n');
  expect(written[1]).toBe('error: UNREACHABLE: cannot reach https://127.0.0.1:8001/v1/cluster (ECONNREFUSED)\n');
});

it("shows a control character as its escape in human output (a task named to clear the screen doesn't), tab and newline kept", () => {
  const name = 'evil\u001b[2J\u001b]0;PWNED\u0007name';
  expect(visible(name)).toBe('evil\\u001b[2J\\u001b]0;PWNED\\u0007name');
  expect(visible('a\tb\nc\u009bd\u007f')).toBe('a\tb\nc\\u009bd\\u007f');
  const table = formatTable([['NAME', 'STATE'], [name, 'running']]);
  // eslint-disable-next-line no-control-regex -- no control character may be left
  expect(table).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  // Columns line up on what is shown.
  const [head, row] = table.split('\n');
  expect(head!.indexOf('STATE')).toBe(row!.indexOf('running'));
});

it('escapes bidi overrides in human output, and DEL, C1 controls and bidi overrides in --json, which stays the same JSON', () => {
  expect(visible('a\u202eb\u2066c')).toBe('a\\u202eb\\u2066c');
  expect(visible('n\u200fr\u200el\u061cm')).toBe('n\\u200fr\\u200el\\u061cm');
  expect(visible('web\u200b\ufeff\u2028\u2029')).toBe('web\\u200b\\ufeff\\u2028\\u2029');
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => (chunks.push(chunk), true)) as typeof process.stdout.write;
  try {
    printJson({ name: 'c1\u009b2J\u202eRLO\u007f\u001b' });
  } finally {
    process.stdout.write = write;
  }
  const out = chunks.join('');
  // eslint-disable-next-line no-control-regex -- no raw control may be left
  expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
  expect(JSON.parse(out)).toEqual({ name: 'c1\u009b2J\u202eRLO\u007f\u001b' });
});

it('shows a command as a shell would read it back: a word quoted when it holds more than plain characters', () => {
  expect(commandText(['sh', '-c', 'echo hi; exit 3'])).toBe("sh -c 'echo hi; exit 3'");
  expect(commandText(['printf', "it's", '', 'a=b/c:1@2%3+4-5'])).toBe("printf 'it'\\''s' '' a=b/c:1@2%3+4-5");
});

it('a value goes to a pipe as stored; to a terminal escaped so that an escape never reads as the same text in the value', () => {
  const cr = 'a\rb';
  const literal = 'a\\u000db';
  // Told apart on a terminal: the literal's backslash doubled, once anything is escaped at all.
  expect(terminalText(cr)).toEqual({ text: 'a\\u000db', escaped: true });
  expect(terminalText(`${literal}\u202e`)).toEqual({ text: 'a\\\\u000db\\u202e', escaped: true });
  // A value a terminal would show faithfully is shown as it is, backslashes and tabs included.
  expect(terminalText('C:\\dir\tx\ny')).toEqual({ text: 'C:\\dir\tx\ny', escaped: false });
  const out: string[] = [];
  const err: string[] = [];
  const [stdoutWrite, stderrWrite] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((chunk: string) => (out.push(chunk), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => (err.push(chunk), true)) as typeof process.stderr.write;
  try {
    printValue('x\r\n\u001b', false);
    printValue('x\r\n\u001b', true);
    printValue('plain', true);
    printValue('ends a line\n', true);
    printValue('as stored\n', false);
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
  }
  // To a pipe nothing is added; on a terminal a newline ends a value that does not end with one.
  expect(out).toEqual(['x\r\n\u001b', 'x\\u000d\n\\u001b\n', 'plain\n', 'ends a line\n', 'as stored\n']);
  expect(err).toEqual(['note: the value holds control characters, shown above as \\uXXXX escapes and each \\ as \\\\; redirect the output (> FILE, | cat) for the value as stored\n']);
});
