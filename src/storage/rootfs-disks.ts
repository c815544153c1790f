import { constants } from 'node:fs';
import { chmod, lstat, open, realpath, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { type ErrorCode, HullError } from '../errors.js';
import {
  ROOTFS_ANNOTATION,
  ROOTFS_DISK_ANNOTATION,
  ROOTFS_IMAGE_ANNOTATION,
} from '../oci/rootfs-annotations.js';
import { run } from '../sys/exec.js';
import { withTimeout } from '../util/deadline.js';

/**
 * A container's root on two disks instead of the 9p share (what `hull serve` gives its
 * sandboxes): its image as a read-only erofs disk, made once per image and shared by every
 * sandbox made from it, and a writable disk of its own holding an ext4 filesystem the host
 * makes and never mounts (the guest writes it). The guest's agent joins them with overlayfs.
 * File metadata then stays in the guest (no 9p round trip per stat), and a VM with no 9p
 * share mounted can be saved and migrated.
 *
 * The VM's shape (and so its template, see src/template/) has both disks whatever the image
 * and the disk's size: the microvm machine cannot hotplug, so a template boots with
 * placeholders and each clone opens its own files in their place. The guest's virtio driver
 * reads a disk's size once, at probe, so the image disk always has IMAGE_DISK_BYTES (the erofs
 * image is padded, sparsely, to it); the writable disk has the sandbox's own size, which its
 * VMM tells a clone's guest after the clone is loaded (QMP block_resize, a config-change
 * interrupt), and which QEMU enforces whatever the guest believes: a write past the file's end
 * fails in QEMU, so a guest growing its filesystem gains nothing.
 */

/** The image disk's size as the guest sees it: every erofs image is padded to it (sparse). */
export const IMAGE_DISK_BYTES = 64 * 2 ** 30;

/** An erofs superblock: its magic at 1024, then (from there) blkszbits at 12 and blocks at 36. */
const EROFS_SUPERBLOCK_OFFSET = 1024;
const EROFS_MAGIC = 0xe0f5e1e2;

/**
 * The size of the erofs filesystem an image disk holds (the disk without its padding), read
 * from its superblock; undefined if it holds none.
 */
export async function erofsBytes(path: string): Promise<number | undefined> {
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const superblock = Buffer.alloc(64);
    await file.read(superblock, 0, superblock.length, EROFS_SUPERBLOCK_OFFSET);
    if (superblock.readUInt32LE(0) !== EROFS_MAGIC) return undefined;
    const blockBits = superblock.readUInt8(12);
    if (blockBits < 9 || blockBits > 16) return undefined;
    const bytes = superblock.readUInt32LE(36) * 2 ** blockBits;
    return bytes > 0 && bytes <= IMAGE_DISK_BYTES ? bytes : undefined;
  } finally {
    await file.close();
  }
}

/** Bounds of a writable disk's size. */
export const MIN_WRITABLE_DISK_MIB = 64;
export const MAX_WRITABLE_DISK_MIB = 64 * 1024;
/** The writable disk's size when none is asked for. */
export const DEFAULT_WRITABLE_DISK_MIB = 2048;

/** The size of the writable disk a template boots with; each clone's VMM gives the real one. */
const WRITABLE_PLACEHOLDER_BYTES = MIN_WRITABLE_DISK_MIB * 2 ** 20;

/** A container's root disks, as the VM is given them. */
export interface RootfsDisks {
  /** The image's erofs file, IMAGE_DISK_BYTES long, read-only. */
  image: string;
  /** The container's own disk: a raw file holding ext4, its size the disk limit. */
  writable: string;
  writableBytes: number;
}

/** How long mkfs.erofs may take on one image. */
const MKFS_EROFS_TIMEOUT_MS = 10 * 60_000;

/**
 * Makes the erofs disk of an unpacked image at `target`, once: made beside it under a
 * temporary name and renamed, so a reader never sees half a disk and two makers at once are
 * harmless. mkfs.erofs only reads the directory (owners, modes, xattrs and device nodes are
 * copied as data; symlinks are not followed). Readable by others (0644) so that a VMM, which
 * runs as a user of its own, can open it: the cache directory above it is root's alone (0700),
 * and a VMM reaches it only by the bind mount its jail is given.
 */
export async function makeImageDisk(
  rootfsDir: string,
  target: string,
  signal: AbortSignal,
  errorCode: ErrorCode = 'ERR_REGISTRY',
): Promise<void> {
  if (await isRegularFile(target)) return;
  const temporary = join(dirname(target), `.${Math.random().toString(36).slice(2)}.erofs`);
  try {
    await run('mkfs.erofs', ['--quiet', temporary, rootfsDir], {
      signal: withTimeout(signal, MKFS_EROFS_TIMEOUT_MS),
      errorCode,
      purpose: 'making the image disk (mkfs.erofs, from erofs-utils)',
    });
    const { size } = await stat(temporary);
    if (size > IMAGE_DISK_BYTES) {
      throw new HullError(
        'ERR_UNSUPPORTED',
        `the image's filesystem is ${Math.ceil(size / 2 ** 30)} GiB: sandboxes take images up to ${IMAGE_DISK_BYTES / 2 ** 30} GiB`,
      );
    }
    await truncate(temporary, IMAGE_DISK_BYTES);
    await chmod(temporary, 0o644);
    await rename(temporary, target);
  } finally {
    await rm(temporary, { force: true });
  }
}

/**
 * Makes a container's writable disk at `path` (which must not exist): a sparse file of
 * `mib` MiB, created root's and 0600 without following a symlink, holding an empty ext4
 * filesystem. No space is reserved for root (a container's root is root), and a journal of
 * 4 MiB (the default is 32) keeps the filesystem whole across a VM killed or saved mid-write
 * at little cost: mkfs then writes 4.7 MiB of a 1 GiB disk instead of 33.
 */
/**
 * `seed`: a directory of hull's own whose files the new filesystem starts with (mkfs.ext4 -d
 * copies them in), e.g. `upper/etc/resolv.conf` for the overlay's upper layer: the host puts
 * files on the disk without ever mounting it.
 */
export async function makeWritableDisk(
  path: string,
  mib: number,
  signal: AbortSignal,
  seed?: string,
): Promise<void> {
  const file = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await file.truncate(mib * 2 ** 20);
  } finally {
    await file.close();
  }
  const seedArgs = seed ? ['-d', seed] : [];
  await run('mkfs.ext4', ['-F', '-q', '-m', '0', '-J', 'size=4', '-E', 'root_owner=0:0', ...seedArgs, path], {
    signal,
    purpose: 'making the sandbox disk (mkfs.ext4)',
  });
}

/** The placeholder disks a template boots with, in its own directory (see the top of this file). */
export async function makePlaceholderDisks(dir: string): Promise<RootfsDisks> {
  const disks = {
    image: join(dir, 'image.placeholder'),
    writable: join(dir, 'writable.placeholder'),
    writableBytes: WRITABLE_PLACEHOLDER_BYTES,
  };
  for (const [path, bytes, mode] of [
    [disks.image, IMAGE_DISK_BYTES, 0o644],
    [disks.writable, disks.writableBytes, 0o600],
  ] as const) {
    const file = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode,
    );
    try {
      await file.truncate(bytes);
    } finally {
      await file.close();
    }
  }
  return disks;
}

/**
 * The root disks a bundle's annotations name, checked: both or neither; each an absolute
 * path without `..`, a regular file (not a symlink), the image under `imagesDir` and exactly
 * IMAGE_DISK_BYTES long, the writable disk exactly `ownDisk` (under `root`) and within the
 * size bounds. These files are opened by a VMM and written by a guest: a bundle must not
 * point them elsewhere. `ownDisk` is the one writable disk the container may have, the one
 * `hull serve` makes for the sandbox of its ID: any other file under the root (another
 * sandbox's or container's disk, a snapshot's frozen copy that forks read) would be written by
 * two guests, or read by a guest it is not.
 */
export async function rootfsDisksOf(
  annotations: Record<string, string> | undefined,
  places: { imagesDir: string; root: string; ownDisk: string },
): Promise<RootfsDisks | undefined> {
  const image = annotations?.[ROOTFS_IMAGE_ANNOTATION];
  const writable = annotations?.[ROOTFS_DISK_ANNOTATION];
  if (image === undefined && writable === undefined) return undefined;
  if (image === undefined || writable === undefined) {
    throw new HullError(
      'ERR_CONFIG',
      `annotations ${ROOTFS_IMAGE_ANNOTATION} and ${ROOTFS_DISK_ANNOTATION} go together: give both or neither`,
    );
  }
  if (writable !== places.ownDisk) {
    throw new HullError(
      'ERR_CONFIG',
      `${ROOTFS_DISK_ANNOTATION}: ${writable} is not this container's own disk: only hull serve names one, its sandbox's (${places.ownDisk}); use ${ROOTFS_ANNOTATION}=disk to have hull make the disks`,
    );
  }
  const imageBytes = await checkedDiskFile(ROOTFS_IMAGE_ANNOTATION, image, places.imagesDir);
  if (imageBytes !== IMAGE_DISK_BYTES) {
    throw new HullError('ERR_CONFIG', `${ROOTFS_IMAGE_ANNOTATION}: ${image} is not an image disk hull made`);
  }
  const writableBytes = await checkedDiskFile(ROOTFS_DISK_ANNOTATION, writable, places.root);
  if (
    writableBytes % 2 ** 20 !== 0 ||
    writableBytes < MIN_WRITABLE_DISK_MIB * 2 ** 20 ||
    writableBytes > MAX_WRITABLE_DISK_MIB * 2 ** 20
  ) {
    throw new HullError(
      'ERR_CONFIG',
      `${ROOTFS_DISK_ANNOTATION}: ${writable} must be a whole number of MiB from ${MIN_WRITABLE_DISK_MIB} to ${MAX_WRITABLE_DISK_MIB}`,
    );
  }
  return { image, writable, writableBytes };
}

/** The size of a disk file a bundle names, once it is shown to be where it must be. */
async function checkedDiskFile(annotation: string, path: string, under: string): Promise<number> {
  const below = relative(resolve(under), path);
  if (!isAbsolute(path) || resolve(path) !== path || below.startsWith('..') || isAbsolute(below) || !below) {
    throw new HullError('ERR_CONFIG', `${annotation}: ${path} must be an absolute path under ${under}`);
  }
  // No directory on the way may be a symlink leading elsewhere either.
  const [parent, top] = await Promise.all([realpath(dirname(path)), realpath(under)]).catch(() => ['', '/']);
  const info =
    parent.startsWith(`${top}/`) || parent === top ? await lstat(path).catch(() => undefined) : undefined;
  if (!info?.isFile()) {
    throw new HullError('ERR_CONFIG', `${annotation}: ${path} is not a regular file`);
  }
  return info.size;
}

async function isRegularFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isFile() === true;
}
