import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOTFS_DISK_ANNOTATION, ROOTFS_IMAGE_ANNOTATION } from '../oci/rootfs-annotations.js';
import { makeImageDisk, makeWritableDisk } from '../storage/rootfs-disks.js';
import type { PulledImage } from './store.js';

/** Image disks being made: sandboxes created at once from a new image wait for one mkfs. */
const making = new Map<string, Promise<void>>();

function imageDiskOf(image: PulledImage, signal: AbortSignal): Promise<void> {
  let made = making.get(image.disk);
  if (!made) {
    made = makeImageDisk(image.rootfs, image.disk, signal).finally(() => making.delete(image.disk));
    making.set(image.disk, made);
  }
  return made;
}

/**
 * A sandbox's own root filesystem made from a pulled image, on disks (see
 * storage/rootfs-disks.ts): the image's erofs disk, made once per image digest beside its
 * unpacked copy (and removed with it by a prune), and a writable disk of `diskMiB` MiB of the
 * sandbox's own at `<sandboxDir>/disk.raw` (starting with the files of `seed`, if given), which
 * goes with the sandbox's directory. Returns the
 * bundle annotations that name them; the bundle's `rootfs` is an empty directory (the root is
 * mounted in the guest, never on the host).
 */
export async function makeSandboxRootfs(
  image: PulledImage,
  sandboxDir: string,
  options: { bundle: string; diskMiB: number; signal: AbortSignal; seed?: string },
): Promise<Record<string, string>> {
  await imageDiskOf(image, options.signal);
  // The one disk the monitor lets this sandbox's bundle name (serve/sandbox-records.ts sandboxDiskPath).
  const writable = join(sandboxDir, 'disk.raw');
  await makeWritableDisk(writable, options.diskMiB, options.signal, options.seed);
  await mkdir(join(options.bundle, 'rootfs'), { mode: 0o700 });
  return { [ROOTFS_IMAGE_ANNOTATION]: image.disk, [ROOTFS_DISK_ANNOTATION]: writable };
}
