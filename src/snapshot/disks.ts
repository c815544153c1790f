import { chmod, constants, copyFile, rename, rm } from 'node:fs/promises';
import { HullError, messageOf } from '../errors.js';
import { run } from '../sys/exec.js';
import { findSystemTool } from '../sys/system-tool.js';

/**
 * The writable disks of saved VMs (a sandbox's raw ext4 disk, see storage/rootfs-disks.ts).
 *
 *  - pause to disk: the disk stays where it is; nothing writes it until the VM is resumed.
 *  - snapshot: the parent runs on and writes its disk, so the snapshot keeps a frozen copy,
 *    made while the VM is stopped (Vm.saveState whileStopped). This host's filesystem is ext4,
 *    which has no reflinks (FICLONE: EOPNOTSUPP), so the copy is sparse: only the written
 *    blocks. Where the filesystem has reflinks (XFS, btrfs) the copy is a clone.
 *  - fork: each fork's disk is a qcow2 overlay on the snapshot's frozen copy: its writes are its
 *    own, what it does not write is read from the copy, and making one costs a header.
 *    Measured here (ext4, a 1 GiB disk with 133 MiB written): a sparse copy 170-330 ms and
 *    101 MiB per fork, a qcow2 overlay 23-47 ms and 196 KiB.
 */

/** Copies `source` to `target` (0644 in a 0700 directory), a reflink where the filesystem has them, else sparse. */
export async function freezeDiskCopy(source: string, target: string, signal: AbortSignal): Promise<void> {
  await cloneOrSparseCopy(source, target, signal);
  // Read by the VMM of every fork (each its own user) as its overlay's backing file, through a
  // bind mount of the file alone; the snapshot's directory (root's, 0700) keeps others out.
  await chmod(target, 0o644);
}

/** Copies `source` to `target` (replaced): a reflink where the filesystem has them, else sparse. */
export async function cloneOrSparseCopy(source: string, target: string, signal: AbortSignal): Promise<void> {
  await rm(target, { force: true });
  try {
    await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
  } catch {
    // No reflinks: cp keeps the holes, which copyFile does not.
    await run('cp', ['--sparse=always', '--', source, target], { signal, purpose: 'copying the disk' });
  }
}

/** Moves a disk file: a rename, or across filesystems a sparse copy and the source removed. */
export async function moveDisk(source: string, target: string, signal: AbortSignal): Promise<void> {
  try {
    await rename(source, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await cloneOrSparseCopy(source, target, signal);
    await rm(source, { force: true });
  }
}

/** A fork's writable disk: a qcow2 overlay on `backing` (a snapshot's frozen copy). */
export async function forkDisk(backing: string, target: string, signal: AbortSignal): Promise<void> {
  const qemuImg = findSystemTool('qemu-img');
  if (!qemuImg) {
    throw new HullError(
      'ERR_QEMU_MISSING',
      'qemu-img is not installed, and forks need it for their disks: run `apt-get install qemu-utils`',
    );
  }
  await rm(target, { force: true });
  try {
    await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', backing, target], {
      signal,
      purpose: 'making a fork disk',
    });
    await chmod(target, 0o600);
  } catch (err) {
    await rm(target, { force: true });
    throw new HullError('ERR_SAVED_STATE', `making a fork's disk failed: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * A raw disk as a qcow2 file holding only its written clusters: what a checkpoint keeps, so
 * that copying it (podman `checkpoint --export` tars the checkpoint, and tar would write a
 * sparse file's holes out whole) costs what the container wrote, not the disk's size.
 */
export async function compactDisk(raw: string, target: string, signal: AbortSignal): Promise<void> {
  await rm(target, { force: true });
  await run(qemuImgOrFail('checkpoints'), ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, target], {
    signal,
    errorCode: 'ERR_SAVED_STATE',
    purpose: 'compacting the disk',
  });
  await chmod(target, 0o600);
}

/**
 * The raw disk (sparse) of a compacted one. The qcow2 file may come from elsewhere (podman
 * `restore --import`): one that names another file to read (a backing file, an external data
 * file) is refused, so that no host file is read into a container's disk.
 */
export async function expandDisk(
  qcow2: string,
  target: string,
  expectedBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const qemuImg = qemuImgOrFail('restores');
  const info = JSON.parse(
    await run(qemuImg, ['info', '--output=json', '-f', 'qcow2', qcow2], {
      signal,
      errorCode: 'ERR_SAVED_STATE',
      purpose: 'reading the disk',
    }),
  ) as {
    'virtual-size'?: number;
    'backing-filename'?: string;
    'format-specific'?: { data?: { 'data-file'?: string } };
  };
  if (info['backing-filename'] !== undefined || info['format-specific']?.data?.['data-file'] !== undefined) {
    throw new HullError('ERR_SAVED_STATE', `the disk ${qcow2} names another file to read: it is refused`);
  }
  // Checked before a byte is written: a disk claiming more (its clusters compressed, or a
  // size no container has) would be expanded onto the host's filesystem.
  if (info['virtual-size'] !== expectedBytes) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the disk ${qcow2} is ${info['virtual-size']} bytes, ${expectedBytes} were saved: it is refused`,
    );
  }
  await rm(target, { force: true });
  await run(qemuImg, ['convert', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, target], {
    signal,
    errorCode: 'ERR_SAVED_STATE',
    purpose: 'expanding the disk',
  });
}

/** qemu-img's path, or a one-line error saying what needs it and how to install it. */
export function qemuImgOrFail(what: string): string {
  const qemuImg = findSystemTool('qemu-img');
  if (!qemuImg) {
    throw new HullError(
      'ERR_QEMU_MISSING',
      `qemu-img is not installed, and ${what} need it for their disks: run \`apt-get install qemu-utils\``,
    );
  }
  return qemuImg;
}
