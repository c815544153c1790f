import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HullError } from '../errors.js';
import type { Spec } from '../oci/spec.js';
import { VmmCgroup } from '../sys/cgroup.js';
import { HostMounter, removeUnmounted } from '../sys/mount.js';
import { killProcessesMentioning } from '../sys/processes.js';
import { containerDir } from './container-id.js';
import { hostCgroupPath } from './host-cgroup.js';
import type { RuntimeSettings } from './runtime.js';

/**
 * Creates the container's directory under the runtime root. Its existence is the claim on
 * the ID: a second create of the same ID fails here, before anything is started.
 */
export async function claimContainerDir(settings: RuntimeSettings, id: string): Promise<string> {
  const dir = containerDir(settings, id);
  await mkdir(dirname(dir), { recursive: true, mode: 0o711 });
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new HullError('ERR_EXISTS', `container ${id} already exists: choose another ID or delete it`);
    }
    throw err;
  }
  return dir;
}

/** Removes a container's directory, never through a mount that is still below it. */
export function removeContainerDir(dir: string): Promise<void> {
  return removeUnmounted(new HostMounter(), dir);
}

/**
 * Removes everything a container may have left on the host once its monitor is gone, however
 * it went (delete, a monitor killed during create or later, a creator that died): its VM, its
 * host cgroup, its share's mounts and its directory.
 *
 * A monitor that was SIGKILLed could not stop its VM: QEMU, jailed in its own mount namespace
 * and cgroup, outlives it and holds the container's files. Only then is the sandbox's cgroup
 * still occupied, so only then (or when the configuration, and so the cgroup's path, is gone)
 * are the host's processes searched: QEMU is found by the container's directory in its
 * command line (with the trailing slash, so container "a" never matches container "ab"), read
 * at the moment it is killed. Then the cgroup, empty now, is removed.
 */
export async function removeContainerLeftovers(
  dir: string,
  id: string,
  spec: Spec | undefined,
): Promise<void> {
  const cgroup = await VmmCgroup.of(hostCgroupPath(spec ?? {}, id));
  if (!spec || (await cgroup.hasProcesses())) await killProcessesMentioning(`${dir}/`);
  await cgroup.remove().catch(() => {});
  await removeContainerDir(dir);
}
