// The MinkubeError a promise rejects with: fails the test when it resolves, or rejects with anything else.
import { expect } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';

export async function rejection(p: Promise<unknown>): Promise<MinkubeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MinkubeError);
  return err as MinkubeError;
}
