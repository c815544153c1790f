import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { FilesystemMount, Mounter } from '../sys/mount.js';

/**
 * Mounts a task's root filesystem at `<bundle>/rootfs` from the snapshotter's mounts in the
 * Create request (usually one overlay), as containerd expects of a shim. No mounts means the
 * bundle's rootfs is already in place. Returns whether anything was mounted.
 */
export async function mountRootfs(
  mounter: Mounter,
  bundle: string,
  mounts: readonly FilesystemMount[],
): Promise<boolean> {
  if (mounts.length === 0) return false;
  const target = join(bundle, 'rootfs');
  await mkdir(target, { recursive: true });
  try {
    for (const mount of mounts) await mounter.mount(mount, target);
  } catch (err) {
    await mounter.unmountTree(target).catch(() => {});
    throw err instanceof HullError
      ? err
      : new HullError('ERR_MOUNT', `cannot mount the task's root filesystem: ${(err as Error).message}`);
  }
  return true;
}

/** Unmounts whatever is mounted on `<bundle>/rootfs`; the directory itself is containerd's. */
export async function unmountRootfs(mounter: Mounter, bundle: string): Promise<void> {
  await mounter.unmountTree(join(bundle, 'rootfs'));
}
