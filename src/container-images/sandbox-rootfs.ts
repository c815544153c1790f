import { run } from '../sys/exec.js';
import type { PulledImage } from './store.js';

/**
 * A sandbox's own writable root filesystem made from a pulled image, whose unpacked copy stays
 * read-only in the cache. For now a copy (with reflinks where the filesystem has them); this is
 * the seam where the block rootfs goes: an erofs image per digest, made once, and a writable
 * disk per sandbox joined by overlayfs in the guest.
 */
export async function makeSandboxRootfs(
  image: PulledImage,
  target: string,
  signal: AbortSignal,
): Promise<void> {
  await run('cp', ['-a', '--reflink=auto', '--', image.rootfs, target], {
    signal,
    purpose: `copying image ${image.digest} for a sandbox`,
  });
}
