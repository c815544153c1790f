import { asksRootOnDisks } from '../oci/rootfs-annotations.js';
import type { Spec } from '../oci/spec.js';
import { containerImagesDir } from '../paths.js';
import { sandboxDiskPath } from '../serve/sandbox-records.js';
import { bundleDisksIn, makeBundleDisks, specOnDisks } from '../storage/bundle-disks.js';
import { type RootfsDisks, rootfsDisksOf } from '../storage/rootfs-disks.js';
import type { Bundle } from './bundle.js';

/**
 * Where a container of its own VM has its root, for every front that makes one (the OCI
 * CLI's monitor, the containerd shim): on the 9p share (no disks), on the disks `hull serve`
 * made and named in the bundle, or on disks made from the bundle's rootfs when it asks for
 * them (`dev.hull.rootfs=disk`, see storage/bundle-disks.ts) — made now in `dir`, or, for a
 * container restored from a checkpoint, put back there already (snapshot/checkpoint-dir.ts).
 *
 * `spec` is what the guest creates the container with: for disks made from the bundle, its
 * bind mounts of files replaced by copies on the disk.
 */
export async function containerRoot(
  options: { id: string; dir: string; bundle: Bundle; root: string; restored: boolean },
  signal: AbortSignal,
): Promise<{ rootfsDisks?: RootfsDisks; spec: Spec; fromBundle: boolean }> {
  const { spec } = options.bundle;
  const named = await rootfsDisksOf(spec.annotations, {
    imagesDir: containerImagesDir(),
    root: options.root,
    ownDisk: sandboxDiskPath(options.root, options.id),
  });
  if (named) return { rootfsDisks: named, spec, fromBundle: false };
  if (!asksRootOnDisks(spec.annotations)) return { spec, fromBundle: false };
  const onDisks = await specOnDisks(options.id, spec);
  const rootfsDisks = options.restored
    ? await bundleDisksIn(options.dir)
    : await makeBundleDisks(options.dir, options.bundle.rootfs, onDisks.files, signal);
  return { rootfsDisks, spec: onDisks.spec, fromBundle: true };
}
