// What the CLI tells the user about a thrown value: a MinkubeError as it is, one from another copy of the errors
// module (a daemon's bundle, or the sources under tsx) by its name and code, anything else as INTERNAL.
import { expect, it } from 'vitest';
import { asMinkubeError, printError } from '../../src/cli/output.js';
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

it('a certificate the CLI could not verify is followed by how to trust the cluster CA', () => {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stderr.write;
  try {
    printError(new MinkubeError('UNREACHABLE', 'cannot reach https://127.0.0.1:8001/v1/cluster (TLS: self-signed certificate in certificate chain)'));
    printError(new MinkubeError('UNREACHABLE', 'cannot reach https://127.0.0.1:8001/v1/cluster (ECONNREFUSED)'));
  } finally {
    process.stderr.write = write;
  }
  expect(written[0]).toMatch(/^error: UNREACHABLE: .*self-signed.*\n {2}the cluster's CA is not trusted here: point MINKUBE_CONFIG at/);
  expect(written[1]).toBe('error: UNREACHABLE: cannot reach https://127.0.0.1:8001/v1/cluster (ECONNREFUSED)\n');
});
