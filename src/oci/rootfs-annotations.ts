/**
 * Bundle annotations that put a container's root on disks instead of the 9p share (see
 * storage/rootfs-disks.ts): `hull serve` writes them for its sandboxes. Each names a file
 * hull made; the shape is checked with the rest of config.json (spec-schema.ts), the places
 * and files before the VM starts.
 */
export const ROOTFS_IMAGE_ANNOTATION = 'dev.hull.rootfs.image';
export const ROOTFS_DISK_ANNOTATION = 'dev.hull.rootfs.disk';
