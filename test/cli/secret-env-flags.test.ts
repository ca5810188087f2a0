// The parsing behind `task run --secret-env NAME=VALUE` and `--secret-env-file FILE`: values kept exactly as written,
// and a bad argument or line named without showing it (it may hold the secret).
import { describe, expect, it } from 'vitest';
import { parseSecretEnvFile, parseSecretEnvPair } from '../../src/cli/tasks.js';
import { runCli } from '../support/cli.js';

describe('--secret-env and --secret-env-file', () => {
  it('a pair splits at the first =; repeated flags accumulate; a bad one is refused without echoing it', () => {
    expect(parseSecretEnvPair('A=b=c', { X: '1' })).toEqual({ X: '1', A: 'b=c' });
    expect(parseSecretEnvPair('EMPTY=')).toEqual({ EMPTY: '' });
    for (const bad of ['s3cret', '=s3cret']) {
      expect(() => parseSecretEnvPair(bad)).toThrow('--secret-env expects NAME=VALUE (the argument is not shown here)');
    }
  });

  it('a file: NAME=VALUE a line, values as written (CRLF too), blank and # lines skipped, bad lines named by number only', () => {
    const text = '# db\r\nDB_PASSWORD= spaced and = signs \r\n\n   \nTOKEN=t0k\n';
    expect(parseSecretEnvFile(text, 'f.env')).toEqual({ DB_PASSWORD: ' spaced and = signs ', TOKEN: 't0k' });
    expect(() => parseSecretEnvFile('A=1\nhunter2\n', 'f.env')).toThrow(/^--secret-env-file f\.env: line 2 is not NAME=VALUE$/);
  });

  it('a missing file is a usage error (exit 2) naming it', async () => {
    const r = await runCli(['task', 'run', 'x', '--secret-env-file', '/no/such/file.env']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read \/no\/such\/file\.env: ENOENT/);
  });
});
