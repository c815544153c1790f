import { fstatSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { HullError } from '../errors.js';
import { RAM_BACKEND_ID } from '../hypervisor/qemu/command-line.js';
import { memoryName } from '../template/memory.js';
import { type PageFilterPlan, TARGET_PAGE_BYTES } from './ram-page-filter.js';

/**
 * Which pages of a cloned VM's RAM are still its template's. A clone's RAM is its template's
 * sealed memfd mapped MAP_PRIVATE: a page its guest never wrote is the template's page, one it
 * wrote is a private copy. Linux says which is which in /proc/PID/pagemap (8 bytes per page of
 * the VMM's address space): bit 63 present, bit 62 swapped, bit 61 "a file page or shared
 * anonymous". A page the VMM holds privately is present or swapped and not a file page; every
 * other page of the mapping reads as the memfd's page at the same offset, which is sealed:
 * it cannot change. So a copy that maps the very same memfd needs only the private pages.
 *
 * The memfd is identified by its inode (device and number), the same in every process that
 * has it open or mapped: the copy's VMM's base is compared with the memory the parent's VMM
 * maps, never a name or a template key (a template removed and built again has the same key
 * and other memory).
 */

/** A memfd, as fstat and stat of a mapping's /proc/PID/map_files entry see it. */
export interface MemoryIdentity {
  dev: string;
  ino: string;
}

/** The identity of the memory behind descriptor `fd` of this process. */
export function memoryIdentityOf(fd: number): MemoryIdentity {
  const info = fstatSync(fd, { bigint: true });
  return { dev: String(info.dev), ino: String(info.ino) };
}

/** /proc/PID/maps is a few hundred lines for a VMM: a bigger one is not read whole. */
const MAX_MAPS_BYTES = 4 * 2 ** 20;
/** Pagemap entries read at once (1 MiB: 512 MiB of guest RAM). */
const ENTRIES_PER_READ = 128 * 1024;

const PRESENT = 1 << 31;
const SWAPPED = 1 << 30;
const FILE_PAGE = 1 << 29;

/** A VMM's mapping of a template's memory as a VM's RAM, and which memory it is. */
export interface RamMapping {
  start: number;
  bytes: number;
  memory: MemoryIdentity;
}

/**
 * The mapping in process `pid` that is a VM's whole RAM block of `ramBytes` over a template's
 * memory (private, from offset 0, a template memory's name), or undefined (not a clone).
 */
export async function ramMappingOf(pid: number, ramBytes: number): Promise<RamMapping | undefined> {
  const maps = await readFile(`/proc/${pid}/maps`, 'latin1');
  if (maps.length > MAX_MAPS_BYTES) return undefined;
  const prefix = `/memfd:${memoryName('')}`;
  for (const line of maps.split('\n')) {
    const found = /^([0-9a-f]+)-([0-9a-f]+) [r-][w-][x-]p 0+ \S+ \d+ +(\S.*)$/.exec(line);
    const [, from = '', to = '', path = ''] = found ?? [];
    if (!path.startsWith(prefix)) continue;
    const start = Number.parseInt(from, 16);
    const bytes = Number.parseInt(to, 16) - start;
    if (bytes !== ramBytes) continue;
    // The file mapped there, as the kernel knows it (root only; never followed as a path).
    const mapped = await stat(`/proc/${pid}/map_files/${from}-${to}`, { bigint: true }).catch(
      () => undefined,
    );
    if (mapped) return { start, bytes, memory: { dev: String(mapped.dev), ino: String(mapped.ino) } };
  }
  return undefined;
}

/** Whether two identities are the same memory. */
export function sameMemory(a: MemoryIdentity, b: MemoryIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * One bit per page of the mapping: set when the process holds that page privately (written
 * since it was mapped). Read while the VM is stopped, so its guest writes nothing meanwhile.
 */
export async function privatePagesOf(
  pid: number,
  mapping: RamMapping,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const pages = mapping.bytes / TARGET_PAGE_BYTES;
  const bits = new Uint8Array(Math.ceil(pages / 8));
  const file = await open(`/proc/${pid}/pagemap`, 'r');
  try {
    const entries = Buffer.alloc(Math.min(pages, ENTRIES_PER_READ) * 8);
    for (let page = 0; page < pages; ) {
      signal.throwIfAborted();
      const want = Math.min(pages - page, ENTRIES_PER_READ) * 8;
      const position = (mapping.start / TARGET_PAGE_BYTES + page) * 8;
      const { bytesRead } = await file.read(entries, 0, want, position);
      if (bytesRead !== want) throw new HullError('ERR_SAVED_STATE', "the VMM's page map was cut short");
      for (let i = 0; i < want; i += 8) {
        const high = entries.readUInt32LE(i + 4);
        if ((high & (PRESENT | SWAPPED)) !== 0 && (high & FILE_PAGE) === 0) {
          const index = page + i / 8;
          bits[index >> 3] = (bits[index >> 3] ?? 0) | (1 << (index & 7));
        }
      }
      page += want / 8;
    }
  } finally {
    await file.close();
  }
  return bits;
}

/** The filter plan for a VM's RAM block whose private pages are `bits`. */
export function planFromPrivatePages(bits: Uint8Array, blockBytes: number): PageFilterPlan {
  return {
    block: RAM_BACKEND_ID,
    blockBytes,
    mustSend: (index) => ((bits[index >> 3] ?? 0) & (1 << (index & 7))) !== 0,
  };
}
