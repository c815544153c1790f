import { HullError } from '../errors.js';
import { logger } from '../log.js';
import type { CloneSource } from '../template/clone.js';
import { isBaseOf, recordLoadedBase } from './ram-base.js';
import { ramBaseMemory } from './ram-base-memory.js';
import type { SavedStateRecord } from './state-file.js';
import { memoryIdentityOf } from './template-pages.js';

const log = logger('snapshot');

/** The memory a saved VM's RAM is loaded over, on `memoryFd` until `close`. */
export interface ResumeBase {
  memoryFd: number;
  close(): Promise<void>;
}

/**
 * The memory a resumed VM's saved RAM loads over. A state saved whole (no `ramBase`) loads over
 * any memory: the live template's, if `live` gives one, only spares the host fresh pages
 * (undefined: memory of the VMM's own). A state saved over a base (pause-ram.ts) needs that very
 * base: the live template's memory when it is the one the base was copied from (same memfd,
 * same host boot: no file read), else the base file made memory again, its hash checked
 * (ram-base-memory.ts). A base that fails a check is refused in one line (`stays` says what
 * is left as it was) and nothing is started.
 */
export async function resumeBase(
  dir: string,
  record: SavedStateRecord,
  live: (() => Promise<CloneSource | undefined>) | undefined,
  stays: string,
  signal: AbortSignal,
): Promise<ResumeBase | undefined> {
  const template = await live?.().catch(() => undefined);
  const fromTemplate = template && {
    memoryFd: template.role.memoryFd,
    close: () => template.close(),
  };
  const saved = record.ramBase;
  if (!saved) return fromTemplate;
  if (template && (await isBaseOf(saved, memoryIdentityOf(template.role.memoryFd)))) {
    log.info({ dir }, "the saved RAM loads over its template's live memory");
    return fromTemplate;
  }
  await template?.close();
  const started = Date.now();
  const refuse = (why: string) =>
    new HullError('ERR_SAVED_STATE', `the saved state in ${dir} is refused: ${why}; ${stays}`);
  const memory = await ramBaseMemory(dir, saved, refuse, signal);
  await recordLoadedBase(dir, saved, memoryIdentityOf(memory.fd)).catch(async (err: unknown) => {
    await memory.close();
    throw err;
  });
  log.info({ dir, ms: Date.now() - started }, 'the saved RAM loads over its base file, made memory again');
  return { memoryFd: memory.fd, close: () => memory.close() };
}
