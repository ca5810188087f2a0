// A small file written whole: a temporary file beside it, renamed into place, so a crash or a full disk never leaves
// it half written (a reader sees the old content or the new). `mode` applies to a file made anew.
import { rename, rm, writeFile } from 'node:fs/promises';

export async function writeFileWhole(path: string, text: string, opts: { mode?: number } = {}): Promise<void> {
  const temp = `${path}.tmp`;
  try {
    await rm(temp, { force: true });
    await writeFile(temp, text, { flag: 'wx', ...(opts.mode === undefined ? {} : { mode: opts.mode }) });
    await rename(temp, path);
  } catch (err) {
    // A full disk would leave an empty temporary file behind, for good.
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}
