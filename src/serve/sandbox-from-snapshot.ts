import { access, chmod, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { ROOTFS_DISK_ANNOTATION, ROOTFS_IMAGE_ANNOTATION } from '../oci/rootfs-annotations.js';
import type { Spec } from '../oci/spec.js';
import { snapshotDiskPath } from '../snapshot/saved-vm.js';
import { run } from '../sys/exec.js';
import type { SnapshotRecord } from './snapshot-records.js';

/**
 * A sandbox started from a snapshot (a fork, or Sandbox.create fromSnapshot) gets its own
 * writable disk: a copy of the snapshot's frozen one, `cp --reflink=auto --sparse=always`
 * (a clone where the filesystem has reflinks, else only the written blocks). A copy, not a
 * qcow2 overlay on the snapshot's disk: each sandbox's disk stays a raw file of its own, which
 * outlives the snapshot (a fork's passing one is removed once its forks run), is paused,
 * snapshotted and forked again as any sandbox's, and needs no other format in the VMM.
 * Measured here (ext4, no reflinks): see docs/design.md "Fork and snapshots".
 */
export async function copySnapshotDisk(
  snapshotDir: string,
  target: string,
  signal: AbortSignal,
): Promise<void> {
  await run('cp', ['--reflink=auto', '--sparse=always', '--', snapshotDiskPath(snapshotDir), target], {
    signal,
    purpose: "copying the snapshot's disk",
  });
  await chmod(target, 0o600);
}

async function placeholderDisk(path: string, diskMiB: number): Promise<void> {
  const file = await open(path, 'wx', 0o600);
  try {
    await file.truncate(diskMiB * 2 ** 20);
  } finally {
    await file.close();
  }
}

/** The image disk the sandbox's root reads, from its bundle (what a snapshot of it keeps). */
export async function imageDiskOfBundle(bundle: string): Promise<string> {
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as Spec;
  const disk = spec.annotations?.[ROOTFS_IMAGE_ANNOTATION];
  if (!disk) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      'this sandbox has no root on disks: only such a sandbox is snapshotted',
    );
  }
  return disk;
}

/**
 * The bundle of a sandbox started from `snapshot`: the image disk the snapshot's, the
 * writable disk its own copy. `specOf` makes the config (serve's sandboxSpec and network).
 */
export async function bundleFromSnapshot(
  snapshot: { record: SnapshotRecord; dir: string },
  sandboxDir: string,
  specOf: (annotations: Record<string, string>) => Spec,
  signal: AbortSignal,
  options: { streamed?: boolean } = {},
): Promise<string> {
  await access(snapshot.record.imageDisk).catch(() => {
    throw new HullError(
      'ERR_NOT_FOUND',
      `the image disk of snapshot ${snapshot.record.snapshotId} is gone (${snapshot.record.image}): remove the snapshot`,
    );
  });
  const bundle = join(sandboxDir, 'bundle');
  await mkdir(join(bundle, 'rootfs'), { recursive: true, mode: 0o700 });
  // The one disk the monitor lets this sandbox's bundle name (sandbox-records.ts sandboxDiskPath).
  const writable = join(sandboxDir, 'disk.raw');
  // A streamed fork's disk is the parent's copy, moved here before its VMM opens it (see
  // snapshot/fork-source.ts); until then a sparse file of its size stands in its place.
  if (options.streamed) await placeholderDisk(writable, snapshot.record.diskMiB);
  else await copySnapshotDisk(snapshot.dir, writable, signal);
  const spec = specOf({
    [ROOTFS_IMAGE_ANNOTATION]: snapshot.record.imageDisk,
    [ROOTFS_DISK_ANNOTATION]: writable,
  });
  await writeFile(join(bundle, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`);
  return bundle;
}
