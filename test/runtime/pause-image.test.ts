// The sandbox's pause image without Docker: the hand-assembled program runs natively (on x86-64) and blocks, and the
// tar is a well-formed ustar archive holding it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { pauseImage, pauseImageSupported, pauseImageTar, pauseProgram, ustarHeader } from '../../src/runtime/pause-image.js';

describe('pauseProgram', () => {
  it('is a 129-byte ELF64 x86-64 executable whose entry is its code at offset 120', () => {
    const elf = pauseProgram();
    expect(elf.length).toBe(129);
    expect([...elf.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    expect(elf.readUInt16LE(18)).toBe(0x3e);
    expect(elf.readBigUInt64LE(24)).toBe(0x400078n);
    expect([...elf.subarray(120)]).toEqual([0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]);
  });

  it.runIf(pauseImageSupported())('runs natively and blocks in pause(2), alive', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-pause-'));
    const file = path.join(dir, 'pause');
    try {
      await fs.writeFile(file, pauseProgram(), { mode: 0o755 });
      await fs.chmod(file, 0o755);
      const child = spawn(file, [], { stdio: 'ignore' });
      const exited = once(child, 'exit');
      // The kernel's view of the process: blocked in syscall 34 (pause on x86-64), not exited, not spinning.
      await waitFor('the program blocked in pause(2)', async () => {
        const syscall = await fs.readFile(`/proc/${child.pid}/syscall`, 'utf8').catch(() => '');
        return syscall.split(' ')[0] === '34';
      });
      expect(child.exitCode).toBeNull();
      expect(child.signalCode).toBeNull();
      expect(child.kill('SIGKILL')).toBe(true);
      expect(await exited).toEqual([null, 'SIGKILL']);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('is for x86-64 only', () => {
    expect(pauseImageSupported('x64')).toBe(true);
    expect(pauseImageSupported('arm64')).toBe(false);
    expect(pauseImage).toBe('minkube-pause:1');
  });
});

describe('pauseImageTar', () => {
  it('holds one ustar entry "pause", mode 0755, with the program padded to 512 bytes, then two zero blocks', () => {
    const tar = pauseImageTar();
    expect(tar.length).toBe(512 + 512 + 1024);
    const header = tar.subarray(0, 512);
    const field = (offset: number, width: number): string => header.toString('ascii', offset, offset + width).replace(/[\0 ]+$/, '');
    expect(field(0, 100)).toBe('pause');
    expect(field(100, 8)).toBe('0000755');
    expect(parseInt(field(124, 12), 8)).toBe(129);
    expect(field(156, 1)).toBe('0');
    expect(header.toString('ascii', 257, 263)).toBe('ustar\0');
    expect(tar.subarray(512, 512 + 129).equals(pauseProgram())).toBe(true);
    expect(tar.subarray(512 + 129).every((b) => b === 0)).toBe(true);
  });

  it('has a header checksum that sums the header with its checksum field as spaces', () => {
    const header = ustarHeader('pause', 129, 0o755);
    const stored = parseInt(header.toString('ascii', 148, 154), 8);
    const blanked = Buffer.from(header).fill(0x20, 148, 156);
    expect(stored).toBe(blanked.reduce((acc, b) => acc + b, 0));
    expect(header.toString('ascii', 154, 156)).toBe('\0 ');
  });

  it('refuses a name ustar cannot hold without a prefix', () => {
    expect(() => ustarHeader('x'.repeat(101), 1, 0o644)).toThrow(RangeError);
  });
});
