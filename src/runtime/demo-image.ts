// The image README's examples and the Docker tests run, minkube-busybox:latest: a statically linked busybox from this
// host with links for common applets, in a hand-written tar for `docker import`. A Docker worker makes it the first
// time a task asks for it, so `npm install && npm start` then `minkube task run minkube-busybox:latest -- echo hi`
// works with no registry. scripts/docker-setup.sh builds the same image (same version label) for CI.
import { open } from 'node:fs/promises';
import { ustarHeader, type TarEntryType } from './pause-image.js';

export const demoImageRepo = 'minkube-busybox';
export const demoImageTag = 'latest';
export const demoImage = `${demoImageRepo}:${demoImageTag}`;
/** Keep equal to IMAGE_VERSION in scripts/docker-setup.sh: the image's contents. */
export const demoImageVersion = '3';
/** docker import's --change lines. */
export const demoImageChanges: readonly string[] = ['ENV PATH=/bin', 'CMD ["/bin/sh"]', `LABEL minkube.image.version=${demoImageVersion}`];

/**
 * Only these applets get links: the vfs storage driver copies every file per container, so each link costs
 * container-create time. The same list as APPLETS in scripts/docker-setup.sh.
 */
export const demoApplets: readonly string[] = (
  'sh ash echo printf sleep cat true false env ls date yes test [ expr seq head tail wc grep sed awk tr cut ' +
  'sort uniq tee touch mkdir rm cp mv ln pwd id hostname uname kill ps timeout xargs find basename dirname stat httpd nc wget'
).split(' ');

export const busyboxCandidates: readonly string[] = ['/bin/busybox', '/usr/bin/busybox', '/usr/local/bin/busybox'];

const ptInterp = 3;

/**
 * True for a 64-bit little-endian ELF executable with no program interpreter (PT_INTERP): statically linked, so it
 * runs in an image that has no libc.
 */
export function isStaticElf64(header: Buffer): boolean {
  if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
  const phoff = Number(header.readBigUInt64LE(32));
  const phentsize = header.readUInt16LE(54);
  const phnum = header.readUInt16LE(56);
  if (phentsize < 4 || phoff + phnum * phentsize > header.length) return false;
  for (let i = 0; i < phnum; i++) {
    if (header.readUInt32LE(phoff + i * phentsize) === ptInterp) return false;
  }
  return true;
}

/** The first statically linked busybox among the candidates, or null. Reads only each file's first 4 KiB. */
export async function findStaticBusybox(candidates: readonly string[] = busyboxCandidates): Promise<string | null> {
  for (const path of candidates) {
    const file = await open(path, 'r').catch(() => null);
    if (file === null) continue;
    try {
      const head = Buffer.alloc(4096);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      if (isStaticElf64(head.subarray(0, bytesRead))) return path;
    } finally {
      await file.close();
    }
  }
  return null;
}

const tarBlockBytes = 512;

interface TarEntry {
  readonly name: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly data?: Buffer;
  readonly linkName?: string;
}

/** The image's file system: /bin/busybox and its applet links, the usual empty directories, /etc/passwd and group. */
export function demoImageTar(busybox: Buffer): Buffer {
  const entries: TarEntry[] = [
    ...['bin/', 'etc/', 'proc/', 'dev/', 'sys/'].map((name): TarEntry => ({ name, type: '5', mode: 0o755 })),
    { name: 'tmp/', type: '5', mode: 0o1777 },
    { name: 'bin/busybox', type: '0', mode: 0o755, data: busybox },
    ...demoApplets.map((a): TarEntry => ({ name: `bin/${a}`, type: '2', mode: 0o777, linkName: 'busybox' })),
    { name: 'etc/passwd', type: '0', mode: 0o644, data: Buffer.from('root:x:0:0:root:/:/bin/sh\n') },
    { name: 'etc/group', type: '0', mode: 0o644, data: Buffer.from('root:x:0:\n') },
  ];
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const size = e.data?.length ?? 0;
    blocks.push(ustarHeader(e.name, size, e.mode, e.type, e.linkName ?? ''));
    if (e.data !== undefined) {
      const padded = Buffer.alloc(Math.ceil(size / tarBlockBytes) * tarBlockBytes);
      e.data.copy(padded);
      blocks.push(padded);
    }
  }
  // Two zero blocks end the archive.
  blocks.push(Buffer.alloc(2 * tarBlockBytes));
  return Buffer.concat(blocks);
}
