import { HullError } from '../errors.js';

/**
 * Whether a VM can be saved (paused to disk, forked, snapshotted) and, when not, why in one
 * line that also says what would work.
 *
 * QEMU refuses to migrate a VM while its guest has a virtio-9p export mounted (the export's
 * open files are host state a saved VM cannot carry), and migration is how a VM is saved. A
 * container of the command line or the shim has its root on the 9p share, so its VM cannot
 * be saved; a sandbox of `hull serve` has its root on disks (a read-only image and a writable
 * disk joined by overlayfs in the guest) and never mounts the share, so its VM can.
 */
export type RootfsKind = 'share' | 'disk';

export function checkpointRefusal(what: string, rootfs: RootfsKind): HullError | undefined {
  if (rootfs === 'disk') return undefined;
  return new HullError(
    'ERR_UNSUPPORTED',
    `${what} cannot be checkpointed: its files are on the 9p share, and QEMU cannot save a VM while 9p is mounted; a sandbox of \`hull serve\` (its root on a disk) can be paused, forked and snapshotted`,
  );
}

/** A restore needs a checkpoint hull made, which no container on the 9p share can have. */
export function restoreRefusal(what: string): HullError {
  return new HullError(
    'ERR_UNSUPPORTED',
    `${what} cannot be restored: hull checkpoints only VMs whose root is on a disk, and a container of the command line has its files on the 9p share, which QEMU cannot save while mounted; a sandbox of \`hull serve\` can be paused and resumed`,
  );
}
