// The image of a Docker worker's network sandbox: one hand-assembled static x86-64 program that calls pause(2)
// forever, in a hand-written tar for `docker import`, so a worker needs no registry and no build tool to make it.

/** Change the tag whenever the bytes below change: a worker imports the image only when the tag is missing. */
export const pauseImageRepo = 'minkube-pause';
export const pauseImageTag = '1';
export const pauseImage = `${pauseImageRepo}:${pauseImageTag}`;
/** The program's path inside the image: the sandbox's Cmd. */
export const pauseCommand = '/pause';

/** The program is x86-64 machine code: other architectures run no sandbox. */
export function pauseImageSupported(arch: string = process.arch): boolean {
  return arch === 'x64';
}

const elfHeaderBytes = 64;
const programHeaderBytes = 56;
const loadAddress = 0x400000;
// loop: mov eax, 34 (pause); syscall; jmp loop (rel8 -9: back to the mov). pause(2) returns only when a caught
// signal arrives, and the program catches none, so the loop is for EINTR after a stop/continue.
const code = Buffer.from([0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7]);

/** A static ELF64 executable: the ELF header, one PT_LOAD program header mapping the whole file, then the code. */
export function pauseProgram(): Buffer {
  const codeOffset = elfHeaderBytes + programHeaderBytes;
  const size = codeOffset + code.length;
  const elf = Buffer.alloc(size);
  // e_ident: magic, ELFCLASS64, little-endian, EV_CURRENT, System V ABI; the rest is padding.
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  elf.writeUInt16LE(2, 16); // e_type: ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // e_machine: EM_X86_64
  elf.writeUInt32LE(1, 20); // e_version
  elf.writeBigUInt64LE(BigInt(loadAddress + codeOffset), 24); // e_entry
  elf.writeBigUInt64LE(BigInt(elfHeaderBytes), 32); // e_phoff: the program header follows the ELF header
  elf.writeBigUInt64LE(0n, 40); // e_shoff: no section headers
  elf.writeUInt32LE(0, 48); // e_flags
  elf.writeUInt16LE(elfHeaderBytes, 52); // e_ehsize
  elf.writeUInt16LE(programHeaderBytes, 54); // e_phentsize
  elf.writeUInt16LE(1, 56); // e_phnum
  elf.writeUInt16LE(64, 58); // e_shentsize
  elf.writeUInt16LE(0, 60); // e_shnum
  elf.writeUInt16LE(0, 62); // e_shstrndx
  const ph = elfHeaderBytes;
  elf.writeUInt32LE(1, ph); // p_type: PT_LOAD
  elf.writeUInt32LE(0x4 | 0x1, ph + 4); // p_flags: PF_R | PF_X
  elf.writeBigUInt64LE(0n, ph + 8); // p_offset: from the start of the file, so the entry is at vaddr + offset
  elf.writeBigUInt64LE(BigInt(loadAddress), ph + 16); // p_vaddr
  elf.writeBigUInt64LE(BigInt(loadAddress), ph + 24); // p_paddr
  elf.writeBigUInt64LE(BigInt(size), ph + 32); // p_filesz
  elf.writeBigUInt64LE(BigInt(size), ph + 40); // p_memsz
  elf.writeBigUInt64LE(0x1000n, ph + 48); // p_align
  code.copy(elf, codeOffset);
  return elf;
}

const tarBlockBytes = 512;

/** An uncompressed ustar archive holding /pause (mode 0755, owned by root, mtime 0 so the bytes never vary). */
export function pauseImageTar(): Buffer {
  const program = pauseProgram();
  const header = ustarHeader(pauseCommand.slice(1), program.length, 0o755);
  const padded = Buffer.alloc(Math.ceil(program.length / tarBlockBytes) * tarBlockBytes);
  program.copy(padded);
  // Two zero blocks end the archive.
  return Buffer.concat([header, padded, Buffer.alloc(2 * tarBlockBytes)]);
}

/** Regular file, symbolic link, directory: the ustar type flags the images need. */
export type TarEntryType = '0' | '2' | '5';

/**
 * One entry's 512-byte ustar header (POSIX.1-1988); numbers are zero-padded octal with a NUL. A symbolic link ('2')
 * names its target in linkName.
 */
export function ustarHeader(name: string, sizeBytes: number, mode: number, type: TarEntryType = '0', linkName = ''): Buffer {
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name longer than 100 bytes: ${name}`);
  if (Buffer.byteLength(linkName) > 100) throw new RangeError(`tar link target longer than 100 bytes: ${linkName}`);
  const h = Buffer.alloc(tarBlockBytes);
  const octal = (value: number, offset: number, width: number): void => {
    h.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
  };
  h.write(name, 0, 100, 'utf8');
  octal(mode, 100, 8);
  octal(0, 108, 8); // uid
  octal(0, 116, 8); // gid
  octal(sizeBytes, 124, 12);
  octal(0, 136, 12); // mtime
  h.write(type, 156, 1, 'ascii'); // typeflag
  h.write(linkName, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii'); // uname
  h.write('root', 297, 32, 'ascii'); // gname
  // The checksum is the byte sum of the header with its own field read as eight spaces; written as six octal
  // digits, a NUL and a space.
  h.fill(0x20, 148, 156);
  const sum = h.reduce((acc, byte) => acc + byte, 0);
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}
