import { type FileHandle, open } from 'node:fs/promises';
import { TemplateMemory } from '../template/memory.js';
import { openRamBase, type RamBaseRecord, readCheckedRamBase, writeNonZeroPages } from './ram-base.js';

/**
 * A paused sandbox's RAM base (ram-base.ts) made memory again, for a resume whose template's
 * memory is gone (`hull template rm`, a host reboot): a sealed memfd, as a template's, filled
 * from the base file. A VMM cannot map the file itself: QEMU 7.2 opens its memory file
 * read-write even to map it private, and the base is root's, shared by every sandbox paused
 * from that template; a sealed memfd can be mapped private by the VMM and written by no one.
 *
 * The holder process that makes the memfd is ended as soon as hull has the memfd open: the
 * resumed VMM's mapping keeps the memory, freed when that VMM exits. The hash is checked before
 * the memory is sealed and handed out: a changed base starts no VMM.
 */
export async function ramBaseMemory(
  dir: string,
  record: RamBaseRecord,
  refuse: (why: string) => Error,
  signal: AbortSignal,
): Promise<FileHandle> {
  const file = await openRamBase(dir, record, refuse);
  let memory: TemplateMemory | undefined;
  try {
    memory = await TemplateMemory.create(`base-${record.sha256.slice(0, 16)}`, record.bytes, dir, signal);
    const target = await open(memory.path, 'r+');
    try {
      await readCheckedRamBase(
        file,
        record,
        (chunk, offset) => writeNonZeroPages(target, chunk, offset),
        refuse,
        signal,
      );
    } finally {
      await target.close();
    }
    await memory.seal(signal);
    return await open(memory.path, 'r');
  } finally {
    memory?.discard();
    await file.close();
  }
}
