import { access, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Whether `path` names something (a link, by what it leads to). */
export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Whether a process with this pid exists (a pid reused since counts as alive: nothing is taken). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes the work directories in `dir` that a build left when it was killed (its `finally`
 * never ran): entries `name` whose `pidOf(name)` is a process that no longer exists. A build
 * still running, in this process or another, keeps its own.
 */
export async function removeAbandoned(
  dir: string,
  pidOf: (name: string) => number | undefined,
): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = pidOf(name);
    if (pid === undefined || pid === process.pid || pidAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The pid at the end of a work directory's name: `.build-<what>-<pid>` or `<what>.tmp-<pid>`. */
export function trailingPid(name: string): number | undefined {
  const m = /^\.build-.*-(\d+)$|\.tmp-(\d+)$/.exec(name);
  const pid = Number(m?.[1] ?? m?.[2]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
