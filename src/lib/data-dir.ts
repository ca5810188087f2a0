// A node's data directory, made on first start. A path that cannot be one is the config's problem, said as such.
import { mkdir } from 'node:fs/promises';
import { MinkubeError } from './errors.js';

const reasons: Record<string, string> = {
  EEXIST: 'a file of that name is in the way',
  ENOTDIR: 'a file stands where one of its parent directories should be',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
};

/** Makes `dir` and its parents when missing; CONFIG_INVALID naming the path, its key and why when it cannot. */
export async function ensureDataDir(dir: string, key = 'dataDir'): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason = (e.code !== undefined ? reasons[e.code] : undefined) ?? e.code ?? e.message;
    throw new MinkubeError('CONFIG_INVALID', `${key} ${dir} cannot be used as a directory: ${reason}`, { cause: err });
  }
}
