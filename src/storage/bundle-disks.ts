import { constants } from 'node:fs';
import { chmod, chown, copyFile, lstat, mkdir, open, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { HullError } from '../errors.js';
import { ROOTFS_ANNOTATION } from '../oci/rootfs-annotations.js';
import { isBindMount, type Mount, type Spec } from '../oci/spec.js';
import {
  DEFAULT_WRITABLE_DISK_MIB,
  IMAGE_DISK_BYTES,
  MAX_WRITABLE_DISK_MIB,
  MIN_WRITABLE_DISK_MIB,
  makeImageDisk,
  makeWritableDisk,
  type RootfsDisks,
} from './rootfs-disks.js';

/**
 * A container's root on disks that hull makes from its bundle's rootfs (the annotation
 * `dev.hull.rootfs=disk`, e.g. podman `--annotation dev.hull.rootfs=disk`), so that its VM
 * mounts no 9p share and can be checkpointed and restored (snapshot/checkpoint-dir.ts).
 *
 * At create, the rootfs the caller mounted (podman's overlay of the image and the container's
 * layer) is read once into an erofs image, and the container gets an empty ext4 disk of its
 * own joined over it in the guest (storage/rootfs-disks.ts). From then on the container's
 * files live in its VM's disks: what it writes does not reach the caller's rootfs (`podman
 * diff`, `cp` and `commit` do not see it), as with any VM runtime whose root is a block device.
 *
 * The bundle's bind mounts would need the share. The small files a container engine binds
 * (podman's /etc/hosts, /etc/hostname, /etc/resolv.conf, /run/.containerenv) are copied onto
 * the writable disk at their places instead, `/dev/shm` becomes a tmpfs of the guest, and any
 * other bind mount (a volume, a host directory) is refused in one line.
 *
 * Both disks are files in the container's directory under the runtime root, gone with it.
 */
const DISKS_DIR = 'rootfs-disks';
const IMAGE_FILE = 'image.erofs';
const WRITABLE_FILE = 'disk.raw';

/** Bounds of the files copied onto the disk in place of bind mounts (they are read by hull). */
const MAX_COPIED_FILE_BYTES = 1 << 20;
const MAX_COPIED_FILES = 32;

/** podman's /dev/shm size (65536k), the guest's tmpfs in place of the host's. */
const SHM_OPTIONS = ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'];

/** Where a container's disks made from its bundle are, in its directory. */
export function bundleDiskPaths(containerDir: string): { dir: string; image: string; writable: string } {
  const dir = join(containerDir, DISKS_DIR);
  return { dir, image: join(dir, IMAGE_FILE), writable: join(dir, WRITABLE_FILE) };
}

/** A file the container gets on its disk in place of a bind mount. */
export interface CopiedFile {
  /** The absolute path in the container. */
  destination: string;
  /** The host file the bundle bound there. */
  source: string;
}

/**
 * The container's spec as its VM takes it on disks: bind mounts of files replaced by copies
 * (returned in `files`), /dev/shm a tmpfs. Any other bind mount is refused in one line.
 */
export async function specOnDisks(
  containerId: string,
  spec: Spec,
): Promise<{ spec: Spec; files: CopiedFile[] }> {
  const files: CopiedFile[] = [];
  const mounts: Mount[] = [];
  for (const mount of spec.mounts ?? []) {
    if (!isBindMount(mount)) {
      mounts.push(mount);
      continue;
    }
    if (mount.destination === '/dev/shm') {
      mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: SHM_OPTIONS });
      continue;
    }
    const info = mount.source ? await stat(mount.source).catch(() => undefined) : undefined;
    if (!info?.isFile() || info.size > MAX_COPIED_FILE_BYTES || files.length >= MAX_COPIED_FILES) {
      throw new HullError(
        'ERR_CONFIG',
        `container ${containerId} has its root on disks (${ROOTFS_ANNOTATION}=disk) and binds ${mount.source ?? 'nothing'} at ${mount.destination}: only files up to ${MAX_COPIED_FILE_BYTES >> 20} MiB (at most ${MAX_COPIED_FILES}) are copied onto its disk; directories and volumes need the 9p share, which keeps a VM from being saved: remove the mount or leave the root on the share`,
      );
    }
    files.push({ destination: posix.normalize(mount.destination), source: mount.source! });
  }
  return { spec: { ...spec, mounts }, files };
}

/**
 * Makes the container's disks in its directory: the erofs image of `rootfs` and a writable
 * disk of DEFAULT_WRITABLE_DISK_MIB holding `files`. A failure leaves what was made for the
 * directory's removal.
 */
export async function makeBundleDisks(
  containerDir: string,
  rootfs: string,
  files: CopiedFile[],
  signal: AbortSignal,
): Promise<RootfsDisks> {
  const paths = bundleDiskPaths(containerDir);
  await mkdir(paths.dir, { mode: 0o700 });
  await makeImageDisk(rootfs, paths.image, signal, 'ERR_CONFIG');
  const seed = join(paths.dir, 'seed');
  try {
    await seedFiles(seed, rootfs, files);
    await makeWritableDisk(paths.writable, DEFAULT_WRITABLE_DISK_MIB, signal, seed);
  } finally {
    await rm(seed, { recursive: true, force: true });
  }
  return { image: paths.image, writable: paths.writable, writableBytes: DEFAULT_WRITABLE_DISK_MIB * 2 ** 20 };
}

/**
 * The overlay's upper layer holding `files` (mkfs.ext4 -d copies it in). Each directory on the
 * way takes the owner and mode of the image's own (overlayfs shows the upper directory's), or
 * root's 0755 where the image has none.
 */
async function seedFiles(seed: string, rootfs: string, files: CopiedFile[]): Promise<void> {
  const upper = join(seed, 'upper');
  await mkdir(seed, { mode: 0o700 });
  await mkdirLike(upper, rootfs);
  for (const file of files) {
    const parts = file.destination.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const relative = parts.slice(0, i).join('/');
      await mkdirLike(join(upper, relative), join(rootfs, relative));
    }
    const target = join(upper, ...parts);
    await copyFile(file.source, target);
    const info = await stat(file.source);
    await chmod(target, info.mode & 0o7777);
  }
}

/** Makes `dir` (if missing) with the owner and mode of `like` when that is a directory. */
async function mkdirLike(dir: string, like: string): Promise<void> {
  const model = await lstat(like).catch(() => undefined);
  if (model && !model.isDirectory()) {
    throw new HullError(
      'ERR_CONFIG',
      `a file the container binds lies under ${like}, which is not a directory in its image: it cannot be copied onto its root disk`,
    );
  }
  await mkdir(dir, { recursive: true });
  await chown(dir, model?.uid ?? 0, model?.gid ?? 0);
  await chmod(dir, model ? model.mode & 0o7777 : 0o755);
}

/**
 * The disks a container's directory holds (made at create, or put back by a restore),
 * checked: regular files (not symlinks), the image of IMAGE_DISK_BYTES, the writable disk
 * within its bounds.
 */
export async function bundleDisksIn(containerDir: string): Promise<RootfsDisks> {
  const paths = bundleDiskPaths(containerDir);
  const sizes: number[] = [];
  for (const path of [paths.image, paths.writable]) {
    const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
    const info = await file?.stat();
    await file?.close();
    if (!info?.isFile()) {
      throw new HullError('ERR_STATE', `the root disk ${path} is missing: the container's files are gone`);
    }
    sizes.push(info.size);
  }
  const [imageBytes, writableBytes] = sizes as [number, number];
  if (
    imageBytes !== IMAGE_DISK_BYTES ||
    writableBytes % 2 ** 20 !== 0 ||
    writableBytes < MIN_WRITABLE_DISK_MIB * 2 ** 20 ||
    writableBytes > MAX_WRITABLE_DISK_MIB * 2 ** 20
  ) {
    throw new HullError('ERR_STATE', `the root disks in ${paths.dir} are not the sizes hull makes`);
  }
  return { image: paths.image, writable: paths.writable, writableBytes };
}
