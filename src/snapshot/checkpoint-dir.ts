import { chmod, lstat, mkdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError, messageOf } from '../errors.js';
import { asksRootOnDisks, ROOTFS_ANNOTATION } from '../oci/rootfs-annotations.js';
import { bundleDiskPaths, bundleDisksIn } from '../storage/bundle-disks.js';
import { erofsBytes, IMAGE_DISK_BYTES, type RootfsDisks } from '../storage/rootfs-disks.js';
import { cloneOrSparseCopy, compactDisk, expandDisk, moveDisk, qemuImgOrFail } from './disks.js';
import { requireRoomFor } from './state-file.js';

/**
 * An OCI checkpoint of a container whose VM can be saved (`hull checkpoint --image-path DIR`,
 * which podman's `container checkpoint` runs): everything the container is, in DIR (0700),
 * because its caller deletes the container from the runtime once it is checkpointed (podman
 * does) and may move DIR to another host (`--export`):
 *
 *  - `vm.state` and `vm-state.json`: the saved VM, root's and 0600, checked before QEMU reads
 *    a byte of it (state-file.ts);
 *  - `image.erofs` and `disk.qcow2`: the container's root disks (storage/bundle-disks.ts): the
 *    image moved out of its directory without its padding, the writable disk as a qcow2 file of
 *    its written clusters (disks.ts compactDisk), root's and 0600; so the directory is as large
 *    as what the container holds, not as its disks' sizes, when podman tars it (`--export`);
 *  - `inventory.img`: hull's record of the checkpoint, written last. The name is CRIU's:
 *    podman's restore looks for that file before it asks the runtime to restore, as its sign
 *    that a whole checkpoint is there.
 *
 * A restore puts the disks back in the new container's directory, as they were, and leaves
 * DIR as it was (its caller removes it once the container runs, or keeps it with `--keep`, and
 * a refused or failed restore must leave the checkpoint whole).
 */
const RECORD_FILE = 'inventory.img';
const FORMAT = 'hull-checkpoint/1';
const IMAGE_FILE = 'image.erofs';
const WRITABLE_FILE = 'disk.qcow2';

export interface CheckpointRecord {
  format: typeof FORMAT;
  containerId: string;
  /** The image's erofs filesystem, without the padding the VM's disk has. */
  imageBytes: number;
  writableBytes: number;
  checkpointedAt: string;
  /**
   * The container was frozen (its cgroup) when its VM was saved, so that nothing in it ran
   * while the VM was copied out: a restored task thaws it when it is started (the shim's).
   */
  frozen?: boolean;
}

/**
 * Puts a checkpointed container's disks into `dir`, then writes the record that completes it.
 * `disks.writable` is compacted into the checkpoint and removed: the container's own disk once
 * its VM is gone (`hull checkpoint`), or the frozen copy a VM that runs on was saved with (the
 * shim's Checkpoint). The image is moved, or copied when `imageStays` (its VM runs on).
 */
export async function completeCheckpoint(
  dir: string,
  containerId: string,
  disks: RootfsDisks,
  signal: AbortSignal,
  options: { imageStays?: boolean; frozen?: boolean } = {},
): Promise<CheckpointRecord> {
  const image = join(dir, IMAGE_FILE);
  const imageBytes = await erofsBytes(disks.image);
  if (imageBytes === undefined) {
    throw new HullError('ERR_SAVED_STATE', `the image disk ${disks.image} holds no erofs filesystem`);
  }
  if (options.imageStays) await cloneOrSparseCopy(disks.image, image, signal);
  else await moveDisk(disks.image, image, signal);
  await truncate(image, imageBytes);
  await chmod(image, 0o600);
  const writable = join(dir, WRITABLE_FILE);
  await compactDisk(disks.writable, writable, signal);
  await rm(disks.writable);
  const record: CheckpointRecord = {
    format: FORMAT,
    containerId,
    imageBytes,
    writableBytes: disks.writableBytes,
    checkpointedAt: new Date().toISOString(),
    ...(options.frozen ? { frozen: true } : {}),
  };
  const temporary = join(dir, `${RECORD_FILE}.new`);
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, join(dir, RECORD_FILE));
  return record;
}

/**
 * What a checkpoint's disks need, checked before the VM is saved (so that a container lacking
 * it runs on as it was): qemu-img, and room in `dir` for the writable disk's written blocks —
 * twice when the VM runs on (`frozenCopy`: a copy of the disk made while it was stopped, then
 * compacted).
 */
export async function requireCheckpointRoom(
  dir: string,
  disks: RootfsDisks,
  options: { frozenCopy?: boolean } = {},
): Promise<void> {
  qemuImgOrFail('checkpoints');
  const written = (await stat(disks.writable)).blocks * 512;
  await requireRoomFor(dir, options.frozenCopy ? 2 * written : written);
}

/**
 * The record of the checkpoint in `dir` that a container with `annotations` (its bundle's) is
 * restored from, or a one-line refusal: a checkpoint hull did not make, or a bundle without
 * the root on disks it was checkpointed with.
 */
export async function restorableCheckpoint(
  dir: string,
  containerId: string,
  annotations: Record<string, string> | undefined,
): Promise<CheckpointRecord> {
  const record = await readCheckpoint(dir, containerId);
  if (!asksRootOnDisks(annotations)) {
    throw new HullError(
      'ERR_CONFIG',
      `container ${containerId} cannot be restored from a checkpoint of its VM: its bundle lacks the annotation ${ROOTFS_ANNOTATION}=disk it was checkpointed with`,
    );
  }
  return record;
}

/** The record of the checkpoint in `dir`, or a one-line refusal when it is not one hull made. */
export async function readCheckpoint(dir: string, containerId: string): Promise<CheckpointRecord> {
  const refuse = (why: string) =>
    new HullError(
      'ERR_SAVED_STATE',
      `container ${containerId} cannot be restored from ${dir}: ${why}; the checkpoint is left as it is`,
    );
  const text = await readFile(join(dir, RECORD_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) throw refuse(`it holds no ${RECORD_FILE}`);
  let record: CheckpointRecord;
  try {
    record = JSON.parse(text) as CheckpointRecord;
  } catch {
    throw refuse('it is not a checkpoint hull made (a runc or crun checkpoint cannot be restored in a VM)');
  }
  if (record?.format !== FORMAT) {
    throw refuse('it is not a checkpoint hull made (a runc or crun checkpoint cannot be restored in a VM)');
  }
  if (
    !Number.isSafeInteger(record.writableBytes) ||
    !Number.isSafeInteger(record.imageBytes) ||
    (record.frozen !== undefined && typeof record.frozen !== 'boolean')
  ) {
    throw refuse(`its ${RECORD_FILE} is damaged`);
  }
  return record;
}

/**
 * Puts the checkpoint's disks in `containerDir` (see the top of this file) and returns them,
 * checked against the record. The caller removes `containerDir` if anything later fails.
 */
export async function placeCheckpointDisks(
  dir: string,
  record: CheckpointRecord,
  containerDir: string,
  signal: AbortSignal,
): Promise<RootfsDisks> {
  const paths = bundleDiskPaths(containerDir);
  await mkdir(paths.dir, { mode: 0o700 });
  const missing = (err: unknown): never => {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the checkpoint in ${dir} lacks its root disks (${(err as NodeJS.ErrnoException).code ?? err}); the checkpoint is left as it is`,
    );
  };
  const image = join(dir, IMAGE_FILE);
  const imageInfo = await lstat(image).catch(missing);
  if (!imageInfo.isFile() || imageInfo.size !== record.imageBytes) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the image disk of the checkpoint in ${dir} is not the one saved (${imageInfo.size} bytes, ${record.imageBytes} recorded); the checkpoint is left as it is`,
    );
  }
  await cloneOrSparseCopy(image, paths.image, signal);
  await truncate(paths.image, IMAGE_DISK_BYTES);
  // Read by the VMM, a user of its own, through a bind mount of the file (see rootfs-disks.ts).
  await chmod(paths.image, 0o644);
  const writable = join(dir, WRITABLE_FILE);
  if (!(await lstat(writable).catch(missing)).isFile()) missing(new Error('not a regular file'));
  await expandDisk(writable, paths.writable, signal).catch((err: unknown) => {
    throw new HullError('ERR_SAVED_STATE', `${messageOf(err)}; the checkpoint in ${dir} is left as it is`, {
      cause: err,
    });
  });
  await chmod(paths.writable, 0o600);
  const disks = await bundleDisksIn(containerDir).catch((err: unknown) => {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the root disks of the checkpoint in ${dir} are damaged (${err instanceof Error ? err.message : err}); the checkpoint is left as it is`,
    );
  });
  if (disks.writableBytes !== record.writableBytes) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the writable disk of the checkpoint in ${dir} is ${disks.writableBytes} bytes, ${record.writableBytes} were saved; the checkpoint is left as it is`,
    );
  }
  return disks;
}
