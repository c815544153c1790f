import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { liveStartTime } from '../sys/process-identity.js';

/**
 * Removes the work directories in `dir` that a build left when it was killed (its `finally`
 * never ran): entries `name` whose `pidOf(name)` is no live process (gone, or a zombie no one
 * reaps). A build still running, in this process or another, keeps its own; so does a pid
 * reused since (nothing is taken on a guess). Only directories of this process's own user
 * are taken: `dir` may be the shared temporary directory, where another user could name a
 * tree of theirs so, and change it under a recursive removal to lead elsewhere.
 */
export async function removeAbandoned(
  dir: string,
  pidOf: (name: string) => number | undefined,
): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = pidOf(name);
    if (pid === undefined || liveStartTime(pid) !== undefined) continue;
    const entry = await lstat(join(dir, name)).catch(() => undefined);
    if (!entry?.isDirectory() || entry.uid !== process.getuid?.()) continue;
    await rm(join(dir, name), { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The pid at the end of a work directory's name: `.build-<what>-<pid>` or `<what>.tmp-<pid>`. */
export function trailingPid(name: string): number | undefined {
  const m = /^\.build-.*-(\d+)$|\.tmp-(\d+)$/.exec(name);
  const pid = Number(m?.[1] ?? m?.[2]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
