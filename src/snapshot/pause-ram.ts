import { open } from 'node:fs/promises';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import { withLock } from '../sys/lock.js';
import { heldMemoryPath } from '../template/memory.js';
import { liveTemplate, templateDir } from '../template/store.js';
import {
  linkRamBase,
  type RamBaseRecord,
  removeRamBase,
  savedRamBaseOf,
  templateRamBase,
} from './ram-base.js';
import type { PageFilterPlan } from './ram-page-filter.js';
import { requireRoomFor } from './state-file.js';
import {
  memoryIdentityOf,
  planFromPrivatePages,
  privatePagesOf,
  type RamMapping,
  ramMappingOf,
  sameMemory,
} from './template-pages.js';

const log = logger('snapshot');

/**
 * What a pause to disk leaves out of the saved RAM: a sandbox cloned from the live template
 * `key` maps that template's sealed memory private, so the pages its guest never wrote are the
 * template's (template-pages.ts). Those are kept once per template, as a file (ram-base.ts),
 * linked into the saved directory `dir`; the saved stream keeps only the pages the guest wrote.
 * Never more bytes than the whole RAM: a guest that wrote every page saves what it would have.
 * A sandbox resumed over its base made memory again (its template was gone) is a clone of that
 * base: paused again, it keeps the same base.
 *
 * Undefined, and the whole RAM is saved as before, when the VM is a clone of neither (booted,
 * its template rebuilt since) or the base cannot be written (no room, an I/O error): a pause
 * never fails for want of its base.
 */
export async function pauseRamFilter(
  parts: { vmmPid: number; ramBytes: number; key: string; dir: string },
  signal: AbortSignal,
): Promise<{ base: RamBaseRecord; plan: () => Promise<PageFilterPlan | undefined> } | undefined> {
  try {
    const mapping = await ramMappingOf(parts.vmmPid, parts.ramBytes);
    const base =
      mapping &&
      ((await templateBase(parts, mapping, signal)) ?? (await savedRamBaseOf(parts.dir, mapping.memory)));
    if (mapping && base) {
      return {
        base,
        // Read at the stream's first byte: the VM is stopped, its pages hold still.
        plan: async () =>
          planFromPrivatePages(await privatePagesOf(parts.vmmPid, mapping, signal), mapping.bytes),
      };
    }
  } catch (err) {
    signal.throwIfAborted();
    log.warn(
      { err: messageOf(err), dir: parts.dir },
      "the template's memory could not be kept as the pause's base: the whole RAM is saved",
    );
  }
  // A base linked by an earlier pause is no base of this whole save.
  await removeRamBase(parts.dir);
  return undefined;
}

/** The base of the live template `key`, linked into `dir`, if `mapping` maps its memory. */
async function templateBase(
  parts: { ramBytes: number; key: string; dir: string },
  mapping: RamMapping,
  signal: AbortSignal,
): Promise<RamBaseRecord | undefined> {
  const template = await liveTemplate(parts.key);
  const memoryPath = template && (await heldMemoryPath(parts.key, template.memory));
  if (!memoryPath) return undefined;
  const held = await open(memoryPath, 'r');
  try {
    if (!sameMemory(memoryIdentityOf(held.fd), mapping.memory)) return undefined;
  } finally {
    await held.close();
  }
  const base = await withLock(templateDir(parts.key), signal, async () => {
    await requireRoomFor(templateDir(parts.key), parts.ramBytes);
    return templateRamBase(parts.key, memoryPath, mapping.memory, signal);
  });
  await linkRamBase(base.path, parts.dir);
  return base.record;
}
