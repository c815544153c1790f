import { readdir } from 'node:fs/promises';
import { logger } from '../log.js';
import { withLock } from '../sys/lock.js';
import { parentOf } from '../sys/processes.js';
import { withTimeout } from '../util/deadline.js';
import { releaseHeldMemory, TemplateMemory } from './memory.js';
import { liveTemplate, templateDir, templatesDir, writeRecord } from './store.js';

/**
 * Gives every template holder whose parent is not init a new one started by this process.
 *
 * Why: a holder outlives the sandbox whose start made it, so once its starter (a monitor) is
 * gone it is adopted by the nearest subreaper above, and no fork, double fork or setsid below
 * a subreaper escapes it. conmon is one, and waits for every process it adopted before it
 * exits: a holder made under conmon kept it alive for as long as the template lived. A verb a
 * client runs itself (podman and CRI-O run `start` directly, not under conmon) starts a holder
 * of the same sealed memory outside that tree (init adopts it once this verb exits), records
 * it, and ends the old one, so conmon exits with its container.
 */
export async function rehomeTemplateHolders(signal: AbortSignal): Promise<void> {
  // A holder adopted by one of this process's own ancestors is where a new one would go too.
  const ancestors = await ancestorsOfThisProcess();
  for (const key of await readdir(templatesDir()).catch(() => [] as string[])) {
    const seen = await liveTemplate(key);
    const parent = seen && (await parentOf(seen.memory.pid));
    if (!seen || parent === undefined || ancestors.has(parent)) continue;
    // The template's own lock, not the store's that a build of another template holds.
    await withLock(templateDir(key), withTimeout(signal, 5000), async () => {
      const record = await liveTemplate(key);
      if (!record || record.memory.pid !== seen.memory.pid) return;
      const memory = await TemplateMemory.adopt(key, record.memory, templateDir(key), signal);
      await writeRecord({ ...record, memory });
      await releaseHeldMemory(key, record.memory);
      logger('template').debug({ key, from: record.memory.pid, to: memory.pid }, 'template holder moved');
    }).catch((err: unknown) => logger('template').warn({ key, err: String(err) }, 'cannot move the holder'));
  }
}

/** The pids above this process, up to init (1). */
async function ancestorsOfThisProcess(): Promise<Set<number>> {
  const ancestors = new Set<number>([1]);
  for (let pid = process.ppid; pid > 1 && !ancestors.has(pid); ) {
    ancestors.add(pid);
    const parent = await parentOf(pid);
    if (parent === undefined) break;
    pid = parent;
  }
  return ancestors;
}
