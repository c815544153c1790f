/**
 * Bundle annotations that put a container's root on disks instead of the 9p share (see
 * storage/rootfs-disks.ts): `hull serve` writes them for its sandboxes. Each names a file
 * hull made; the shape is checked with the rest of config.json (spec-schema.ts), the places
 * and files before the VM starts.
 */
export const ROOTFS_IMAGE_ANNOTATION = 'dev.hull.rootfs.image';
export const ROOTFS_DISK_ANNOTATION = 'dev.hull.rootfs.disk';

/**
 * `dev.hull.rootfs=disk` on any container's bundle (podman `--annotation dev.hull.rootfs=disk`):
 * hull makes the root disks itself, from the bundle's rootfs, when the container is created
 * (storage/bundle-disks.ts), so that its VM mounts no share and can be checkpointed. `share`,
 * the default, keeps the root on the 9p share.
 */
export const ROOTFS_ANNOTATION = 'dev.hull.rootfs';
export const ROOTFS_ANNOTATION_VALUES = ['share', 'disk'] as const;

/** Whether a bundle's annotations ask for its root on disks that hull makes from its rootfs. */
export function asksRootOnDisks(annotations: Record<string, string> | undefined): boolean {
  return annotations?.[ROOTFS_ANNOTATION] === 'disk';
}

/** Whether a container's root is on disks, whoever made them (serve, or hull from the bundle). */
export function hasRootOnDisks(annotations: Record<string, string> | undefined): boolean {
  return annotations?.[ROOTFS_IMAGE_ANNOTATION] !== undefined || asksRootOnDisks(annotations);
}
