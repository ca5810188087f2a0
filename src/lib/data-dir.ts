// A node's data directory, made on first start. A path that cannot be one is the config's problem, said as such.
import { mkdir } from 'node:fs/promises';
import { MinkubeError } from './errors.js';
import { errnoReason } from './errno.js';

/** Makes `dir` and its parents when missing; CONFIG_INVALID naming the path, its key and why when it cannot. */
export async function ensureDataDir(dir: string, key = 'dataDir'): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const reason = errnoReason(err, { EEXIST: 'a file of that name is in the way' });
    throw new MinkubeError('CONFIG_INVALID', `${key} ${dir} cannot be used as a directory: ${reason}`, { cause: err });
  }
}
