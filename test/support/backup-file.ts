// Byte-level edits of backup files made by the code (src/manager/backup-file.ts), as a user with a hex editor or
// `python3 -c "...replace(...)"` makes them: a header field changed in place, and a file turned into the format an
// earlier build wrote.
import { createHash } from 'node:crypto';

const MAGIC_BYTES = 8;
const HEADER_DIGEST_BYTES = 32;

/** `bytes` with the first `from` replaced by `to` (latin1, so any byte survives); throws when `from` is not there. */
export function replaceOnce(bytes: Uint8Array, from: string, to: string): Buffer {
  const text = Buffer.from(bytes).toString('latin1');
  if (!text.includes(from)) throw new Error(`replaceOnce: ${JSON.stringify(from)} is not in the file`);
  return Buffer.from(text.replace(from, to), 'latin1');
}

/** A format-2 file's header JSON, and the offset its digest starts at. */
function headerOf(bytes: Uint8Array): { json: string; end: number } {
  const buf = Buffer.from(bytes);
  const end = MAGIC_BYTES + 4 + buf.readUInt32BE(MAGIC_BYTES);
  return { json: buf.subarray(MAGIC_BYTES + 4, end).toString('utf8'), end };
}

/**
 * A format-2 file as a format-1 file (builds before the header digest) holding the same state: the header says
 * format 1 and the digest after it is gone. Byte for byte what those builds wrote (same header fields, same order).
 */
export function asFormat1(bytes: Uint8Array): Buffer {
  const buf = Buffer.from(bytes);
  const { json, end } = headerOf(buf);
  if (!json.startsWith('{"format":2,')) throw new Error(`asFormat1: not a format-2 header: ${json.slice(0, 40)}`);
  return Buffer.concat([buf.subarray(0, MAGIC_BYTES + 4), Buffer.from(json.replace('"format":2,', '"format":1,'), 'utf8'), buf.subarray(end + HEADER_DIGEST_BYTES)]);
}

/** A format-2 file whose header JSON is `edit(json)`, with its length and digest made to match: what a forger makes. */
export function withHeaderRewritten(bytes: Uint8Array, edit: (json: string) => string): Buffer {
  const buf = Buffer.from(bytes);
  const { json, end } = headerOf(buf);
  const edited = Buffer.from(edit(json), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(edited.length);
  const head = Buffer.concat([buf.subarray(0, MAGIC_BYTES), length, edited]);
  return Buffer.concat([head, createHash('sha256').update(head).digest(), buf.subarray(end + HEADER_DIGEST_BYTES)]);
}
