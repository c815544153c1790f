import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { guestLogger } from './log.js';

const ROOT = '/sys/fs/cgroup';
/** Containers' cgroups live below this one (see spec.ts: cgroupsPath /hull/<id>). */
export const CONTAINERS_CGROUP = `${ROOT}/hull`;

/**
 * A fresh kernel delegates no controller below the root cgroup, so a container's cgroup would
 * have no memory.max or pids.max and its limits would not apply. Enable every available
 * controller for /hull and the containers below it.
 */
export async function delegateControllers(): Promise<void> {
  const available = (await readFile(`${ROOT}/cgroup.controllers`, 'utf8'))
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  const enable = available.map((c) => `+${c}`).join(' ');
  if (!enable) return;
  try {
    await writeFile(`${ROOT}/cgroup.subtree_control`, enable);
    await mkdir(CONTAINERS_CGROUP, { recursive: true });
    await writeFile(`${CONTAINERS_CGROUP}/cgroup.subtree_control`, enable);
  } catch (err) {
    guestLogger('cgroups').warn('cannot delegate cgroup controllers', { error: (err as Error).message });
  }
}
