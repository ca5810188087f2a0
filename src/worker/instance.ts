// A worker's instance: an id made on the first start of its data directory and kept there. Its containers carry it
// (labelInstance), so that two clusters' workers of one name on the same Docker engine leave each other's alone.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MinkubeError } from '../lib/errors.js';

/** The file in a worker's data directory that names its instance (labelInstance on its containers). */
export const workerInstanceFile = 'worker-instance';

/** This data directory's worker instance id, made (12 hex digits, written whole) on its first start. */
export async function workerInstance(dataDir: string): Promise<string> {
  const path = join(dataDir, workerInstanceFile);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const made = randomBytes(6).toString('hex');
    await writeFile(`${path}.tmp`, `${made}\n`);
    await rename(`${path}.tmp`, path);
    return made;
  }
  const id = text.trim();
  if (!/^[0-9a-f]{12}$/.test(id)) {
    throw new MinkubeError('STORAGE_CORRUPT', `${path} does not hold a worker instance id; remove it to start as a new instance (the containers of the old one are then neither adopted nor removed)`);
  }
  return id;
}
