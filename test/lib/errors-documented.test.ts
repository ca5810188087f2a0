// The error registry is part of the contract: every code a node or the CLI can answer is named in README.md.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { errorRegistry } from '../../src/lib/errors.js';
import { repoRoot } from '../support/cluster.js';

it('README.md names every code of the error registry', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const missing = Object.keys(errorRegistry).filter((code) => !readme.includes(`\`${code}\``));
  expect(missing).toEqual([]);
});
