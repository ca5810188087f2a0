// The parsing behind `task run --secret-env NAME=VALUE` and `--secret-env-file FILE`: values kept exactly as written,
// and a bad argument or line named without showing it (it may hold the secret); a bad name is refused before any
// request, by the managers' own rule.
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

  it('a name the managers would refuse is refused here, named, with its value never shown', () => {
    for (const bad of ['1BAD=s3cret', 'A-B=s3cret', 'a b=s3cret', `${'A'.repeat(257)}=s3cret`]) {
      expect(() => parseSecretEnvPair(bad)).toThrow(/^--secret-env ".+": not a valid variable name \(letters, digits and _, not starting with a digit; the value is not shown here\)$/);
      expect(() => parseSecretEnvPair(bad)).not.toThrow(/s3cret/);
    }
    expect(() => parseSecretEnvPair('1BAD=x')).toThrow('--secret-env "1BAD": not a valid variable name');
    expect(parseSecretEnvPair(`_OK_${'A'.repeat(252)}=v`)).toHaveProperty(`_OK_${'A'.repeat(252)}`, 'v');
    expect(() => parseSecretEnvFile('A=1\n9LIVES=s3cret\n', 'f.env')).toThrow(/^--secret-env-file f\.env: line 2: "9LIVES" is not a valid variable name \(letters, digits and _, not starting with a digit\)$/);
  });

  it('a bad name is a usage error (exit 2) before any request, without the value', async () => {
    // No manager listens on port 1: a request would fail UNREACHABLE (exit 1) instead.
    const r = await runCli(['task', 'run', 'busybox', '--secret-env', '1BAD=s3cret'], { MINKUBE_API: 'http://127.0.0.1:1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--secret-env "1BAD": not a valid variable name/);
    expect(r.stderr).not.toMatch(/s3cret|INVALID_TASK_SPEC|UNREACHABLE/);
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
