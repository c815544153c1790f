import { HullError } from '../errors.js';
import type { VmTemplateRole } from '../hypervisor/hypervisor.js';
import { logger } from '../log.js';
import type { CloneSource } from '../template/clone.js';
import { isBaseOf, recordLoadedBase } from './ram-base.js';
import { ramBaseMemory } from './ram-base-memory.js';
import { openCheckedState, type SavedStateRecord } from './state-file.js';
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

/**
 * How a VMM loads the state on `stateFd`: over `baseMemoryFd` mapped private (a template's
 * memory, or a paused sandbox's base), whose pages it then has already, or into fresh memory of
 * its own, which costs the host a cleared huge page for each 2 MiB the state fills.
 */
export function loadStateRole(
  stateFd: number,
  baseMemoryFd: number | undefined,
): Pick<VmTemplateRole, 'role' | 'memoryFd' | 'stateFd' | 'withRam'> {
  return baseMemoryFd !== undefined
    ? { role: 'clone', memoryFd: baseMemoryFd, stateFd, withRam: true }
    : { role: 'restore', memoryFd: -1, stateFd };
}

/**
 * A paused VM's state in `dir`, checked (openCheckedState), with the memory it loads over
 * (resumeBase): its record, the VMM's role, and `close` for both once the VMM has them.
 */
export async function openPausedState(
  dir: string,
  expect: Parameters<typeof openCheckedState>[1],
  live: (() => Promise<CloneSource | undefined>) | undefined,
  stays: string,
  signal: AbortSignal,
): Promise<{ record: SavedStateRecord; role: VmTemplateRole; close(): Promise<void> }> {
  const { file, record } = await openCheckedState(dir, expect, signal);
  const base = await resumeBase(dir, record, live, stays, signal).catch(async (err: unknown) => {
    await file.close();
    throw err;
  });
  return {
    record,
    role: loadStateRole(file.fd, base?.memoryFd),
    close: async () => {
      await file.close();
      await base?.close();
    },
  };
}
