import { HullError } from '../errors.js';

/**
 * Whether a VM can be saved (paused to disk, forked, snapshotted, checkpointed) and, when not,
 * why in one line that also says what would work.
 *
 * QEMU refuses to migrate a VM while its guest has a virtio-9p export mounted (the export's
 * open files are host state a saved VM cannot carry), and migration is how a VM is saved. A
 * container has its root on the 9p share unless its root is on disks: a sandbox of `hull
 * serve` (a read-only image and a writable disk joined by overlayfs in the guest), or an OCI
 * container created with the annotation `dev.hull.rootfs=disk` (hull makes the disks from
 * its bundle's rootfs, see storage/bundle-disks.ts). Such a VM never mounts the share, so it
 * can be saved.
 */
export type RootfsKind = 'share' | 'disk';

/** How the command line's containers get a root that can be saved. */
export const DISK_ROOT_HINT =
  'a container created with the annotation dev.hull.rootfs=disk (podman --annotation dev.hull.rootfs=disk) has its root on disks and can be';

export function checkpointRefusal(
  what: string,
  rootfs: RootfsKind,
  alternative = `${DISK_ROOT_HINT} checkpointed`,
): HullError | undefined {
  if (rootfs === 'disk') return undefined;
  return new HullError(
    'ERR_UNSUPPORTED',
    `${what} cannot be checkpointed: its files are on the 9p share, and QEMU cannot save a VM while 9p is mounted; ${alternative}`,
  );
}
