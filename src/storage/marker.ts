// The acknowledged-state marker: a small fsynced file, kept apart from the log, that says what this node's storage
// held when it last told anyone so (the last entry of its durable log, its term and vote). At start-up a log that
// ends before the marker says the disk lost or rolled back data this node had acknowledged (docs/storage-faults.md).
import { constants } from 'node:fs';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { nodeId, type NodeId } from '../lib/ids.js';

/** What the node had acknowledged: its durable log ended at (ackedTerm, ackedIndex); its hard state's term and vote. */
export interface AckMarker {
  readonly ackedIndex: number;
  readonly ackedTerm: number;
  readonly term: number;
  readonly vote: NodeId | null;
}

export const emptyMarker: AckMarker = { ackedIndex: 0, ackedTerm: 0, term: 0, vote: null };

/** What reading a marker found: none yet, one, or one that no slot holds intact (then the reason). */
export type MarkerRead = { readonly kind: 'none' } | { readonly kind: 'ok'; readonly marker: AckMarker } | { readonly kind: 'damaged'; readonly reason: string };

/** Where a marker lives: a file (FileMarker) or memory (tests, the simulator). */
export interface MarkerStore {
  read(): Promise<MarkerRead>;
  /** Resolves once the marker is durable. */
  write(marker: AckMarker): Promise<void>;
  /** Forgets the marker (a new member joining with an empty data directory). */
  reset(): Promise<void>;
  /** Where it lives, for messages. */
  readonly where: string;
  close(): Promise<void>;
}

/** Raft's "at least as up to date": a log ending at (term, index) holds what one ending at (otherTerm, otherIndex) did. */
export function covers(term: number, index: number, otherTerm: number, otherIndex: number): boolean {
  return term > otherTerm || (term === otherTerm && index >= otherIndex);
}

/**
 * Where a data directory's marker lives: beside it, `<dataDir>.marker`, not inside, so that a data directory replaced
 * by an older copy of itself (a restored backup) is found out as surely as a damaged file in it.
 */
export function markerPathFor(dataDir: string): string {
  return `${resolve(dataDir)}.marker`;
}

const SLOT_BYTES = 512;
const MAGIC = 0x4d4b4d31; // 'MKM1'
const HEADER_BYTES = 4 + 4 + 8 + 8 + 8 + 8 + 2; // crc, magic, seq, ackedIndex, ackedTerm, term, vote length

function encodeSlot(seq: number, m: AckMarker): Buffer {
  const vote = Buffer.from(m.vote ?? '', 'utf8');
  const buf = Buffer.alloc(SLOT_BYTES);
  if (HEADER_BYTES + vote.length > SLOT_BYTES) throw new Error(`a node id of ${vote.length} bytes does not fit the marker`);
  buf.writeUInt32BE(MAGIC, 4);
  buf.writeDoubleBE(seq, 8);
  buf.writeDoubleBE(m.ackedIndex, 16);
  buf.writeDoubleBE(m.ackedTerm, 24);
  buf.writeDoubleBE(m.term, 32);
  buf.writeUInt16BE(vote.length, 40);
  vote.copy(buf, HEADER_BYTES);
  buf.writeUInt32BE(crc32(buf.subarray(4)), 0);
  return buf;
}

function decodeSlot(buf: Buffer): { seq: number; marker: AckMarker } | null {
  if (buf.length < SLOT_BYTES || buf.readUInt32BE(4) !== MAGIC) return null;
  if (crc32(buf.subarray(4, SLOT_BYTES)) !== buf.readUInt32BE(0)) return null;
  const voteBytes = buf.readUInt16BE(40);
  if (HEADER_BYTES + voteBytes > SLOT_BYTES) return null;
  const vote = voteBytes === 0 ? null : nodeId(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + voteBytes));
  const marker = { ackedIndex: buf.readDoubleBE(16), ackedTerm: buf.readDoubleBE(24), term: buf.readDoubleBE(32), vote };
  return { seq: buf.readDoubleBE(8), marker };
}

/**
 * The marker as a file of two 512-byte slots written in turn, each with a sequence number and a crc32, overwritten in
 * place through O_DSYNC (durable when the write returns): a write torn by a crash damages only the slot being written,
 * and the other still holds the marker before it (which the write had not acknowledged yet). Reading takes the intact
 * slot with the higher sequence.
 */
export class FileMarker implements MarkerStore {
  private seq = 0;
  private file: FileHandle | null = null;

  constructor(readonly where: string) {}

  async read(): Promise<MarkerRead> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.where);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      return { kind: 'damaged', reason: `the marker ${this.where} is unreadable: ${(err as Error).message}` };
    }
    const slots = [decodeSlot(bytes.subarray(0, SLOT_BYTES)), decodeSlot(bytes.subarray(SLOT_BYTES, 2 * SLOT_BYTES))];
    let best: { seq: number; marker: AckMarker } | null = null;
    for (const s of slots) if (s !== null && (best === null || s.seq > best.seq)) best = s;
    if (best === null) return { kind: 'damaged', reason: `the marker ${this.where} holds no intact copy (${bytes.length} bytes)` };
    this.seq = best.seq;
    return { kind: 'ok', marker: best.marker };
  }

  async write(marker: AckMarker): Promise<void> {
    const seq = this.seq + 1;
    const file = this.file ?? (await this.openFile());
    // The file is open with O_DSYNC: the write returns once its data is durable (one trip to the thread pool, not a
    // write and then an fdatasync).
    await file.write(encodeSlot(seq, marker), 0, SLOT_BYTES, (seq % 2) * SLOT_BYTES);
    this.seq = seq;
  }

  async close(): Promise<void> {
    const f = this.file;
    this.file = null;
    await f?.close();
  }

  /** Opens the file, creating it (and syncing its directory, so the new name survives a power failure). */
  private async openFile(): Promise<FileHandle> {
    const f = await open(this.where, constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o600);
    const dir = await open(dirname(this.where), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    this.file = f;
    return f;
  }

  async reset(): Promise<void> {
    await this.close();
    const temp = `${this.where}.tmp`;
    await unlink(temp).catch(() => undefined);
    // A rename, so a crash leaves either the old marker or none; the next write makes a new file.
    await rename(this.where, temp).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await unlink(temp).catch(() => undefined);
    this.seq = 0;
  }
}

/** The marker in memory: what a test or the simulator's disk keeps; `damaged` simulates a marker no slot holds. */
export class MemoryMarker implements MarkerStore {
  readonly where = 'memory';
  value: AckMarker | null = null;
  damaged = false;
  writes = 0;

  async read(): Promise<MarkerRead> {
    if (this.damaged) return { kind: 'damaged', reason: 'the marker is damaged' };
    return this.value === null ? { kind: 'none' } : { kind: 'ok', marker: this.value };
  }

  async write(marker: AckMarker): Promise<void> {
    this.value = marker;
    this.damaged = false;
    this.writes++;
  }

  async reset(): Promise<void> {
    this.value = null;
    this.damaged = false;
  }

  async close(): Promise<void> {}
}
