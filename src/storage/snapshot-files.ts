// Snapshot bytes on disk for LevelRaftStorage: one file per snapshot in <dir>/snapshots, written to a temp file,
// fsynced, renamed and the directory fsynced, so a file under its final name is whole and survives a power failure.
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeDirs } from '../lib/make-dirs.js';

const TEMP_SUFFIX = '.tmp';
const SNAPSHOT_SUFFIX = '.snap';

/**
 * Writes `data` (one buffer, or parts written one after the other) durably as `dir/name`, replacing any file of that
 * name. The file is the owner's alone (0600), and so is a directory made for it (0700): snapshots and backups hold
 * token hashes, the session key and secret environment values.
 */
export async function writeFileDurably(dir: string, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
  // makeDirs answers the first directory it created: that one's entry lives in its parent, which must be synced too.
  const created = await makeDirs(dir, 0o700);
  if (created !== undefined) await syncDir(dirname(created));
  const temp = join(dir, name + TEMP_SUFFIX);
  // An old temp file (a crash mid-write) keeps its mode through open(): removed first, so the new one is made 0600.
  await unlink(temp).catch(() => undefined);
  const file = await open(temp, 'w', 0o600);
  try {
    try {
      for (const chunk of data instanceof Uint8Array ? [data] : coalesced(data)) {
        for (let done = 0; done < chunk.length; ) done += (await file.write(chunk, done, chunk.length - done)).bytesWritten;
      }
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (err) {
    // A write that failed (a full disk) leaves nothing behind: its part would hold the room the next one needs.
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await rename(temp, join(dir, name));
  await syncDir(dir);
}

/** Bytes of at least this size are written as they are; smaller parts in a row are joined up to it first. */
const WRITE_CHUNK_BYTES = 1 << 20;

/** `parts` as few writes: each run of small parts joined (up to WRITE_CHUNK_BYTES), large ones as they are. */
function* coalesced(parts: readonly Uint8Array[]): Generator<Uint8Array> {
  let run: Uint8Array[] = [];
  let runBytes = 0;
  for (const part of parts) {
    if (part.length >= WRITE_CHUNK_BYTES) {
      if (run.length > 0) yield Buffer.concat(run);
      [run, runBytes] = [[], 0];
      yield part;
      continue;
    }
    run.push(part);
    runBytes += part.length;
    if (runBytes >= WRITE_CHUNK_BYTES) {
      yield Buffer.concat(run);
      [run, runBytes] = [[], 0];
    }
  }
  if (run.length > 0) yield Buffer.concat(run);
}

/**
 * The file's bytes, in a buffer of their own, or null when it does not exist. Read with as few reads as the kernel
 * allows (readFile reads 512 KiB at a time, each a trip to the thread pool: 76 for a 38 MiB snapshot).
 */
export async function readFileIfExists(path: string): Promise<Buffer | null> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const { size } = await file.stat();
    const bytes = Buffer.allocUnsafeSlow(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await file.read(bytes, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    // A file that grew since stat() is read as it was; one that shrank answers what it holds.
    return done === size ? bytes : bytes.subarray(0, done);
  } finally {
    await file.close();
  }
}

/** Deletes temp files and snapshot files other than `keep` (what a crash or an earlier save left); answers their names. */
export async function removeStaleFiles(dir: string, keep: string | null): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const stale = names.filter((n) => n.endsWith(TEMP_SUFFIX) || (n.endsWith(SNAPSHOT_SUFFIX) && n !== keep));
  for (const name of stale) await unlink(join(dir, name)).catch(ignoreMissing);
  return stale;
}

export async function removeFileIfExists(path: string): Promise<void> {
  await unlink(path).catch(ignoreMissing);
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

/** Makes the entries of `dir` (a rename into it, a file made in it) durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
