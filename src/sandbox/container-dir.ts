import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HullError } from '../errors.js';
import { HostMounter, removeUnmounted } from '../sys/mount.js';
import { containerDir, type RuntimeSettings } from './runtime.js';

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
