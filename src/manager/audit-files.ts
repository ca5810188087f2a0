// Reading the audit log's files a line at a time, forwards or backwards, in bounded chunks: a query never holds a
// whole 16 MiB file, and it yields to the event loop between chunks, so the Raft driver keeps its ticks.
import type { FileHandle } from 'node:fs/promises';

const CHUNK_BYTES = 64 * 1024;
/** A "line" longer than this without a newline is not one of ours (a torn or foreign file): it is skipped. */
const LINE_BYTES_MAX = 1024 * 1024;
const NEWLINE = 0x0a;

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** The complete lines of the file's first `size` bytes, oldest first. A last line without its newline is skipped. */
export async function* linesForward(fh: FileHandle, size: number): AsyncGenerator<string> {
  let pos = 0;
  let rest: Buffer = Buffer.alloc(0);
  while (pos < size) {
    const chunk = await readAt(fh, pos, Math.min(CHUNK_BYTES, size - pos));
    if (chunk.length === 0) return;
    pos += chunk.length;
    const data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    const lastNewline = data.lastIndexOf(NEWLINE);
    if (lastNewline < 0) {
      rest = data.length > LINE_BYTES_MAX ? Buffer.alloc(0) : data;
      continue;
    }
    rest = Buffer.from(data.subarray(lastNewline + 1));
    for (const line of data.subarray(0, lastNewline).toString('utf8').split('\n')) if (line !== '') yield line;
  }
}

/**
 * The complete lines of the file's first `size` bytes, newest first. Bytes after the last newline (a line still
 * being written) are skipped. Chunks are split at newline bytes before decoding, so no character is cut in two.
 */
export async function* linesBackward(fh: FileHandle, size: number): AsyncGenerator<string> {
  let end = size;
  // The bytes of a line whose beginning lies in an earlier chunk (they end just before a newline).
  let carry: Buffer = Buffer.alloc(0);
  let atFileEnd = true;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK_BYTES);
    const data = Buffer.concat([await readAt(fh, start, end - start), carry]);
    end = start;
    const firstNewline = start === 0 ? -1 : data.indexOf(NEWLINE);
    if (start > 0 && firstNewline < 0) {
      carry = data.length > LINE_BYTES_MAX ? Buffer.alloc(0) : data;
      continue;
    }
    carry = start === 0 ? Buffer.alloc(0) : Buffer.from(data.subarray(0, firstNewline));
    const lines = data.subarray(firstNewline + 1).toString('utf8').split('\n');
    if (atFileEnd) lines.pop(); // '' when the file ends with a newline, else a partial line
    atFileEnd = false;
    for (let i = lines.length - 1; i >= 0; i--) if (lines[i] !== '') yield lines[i]!;
  }
}
