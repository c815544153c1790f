import { isHullError } from '../errors.js';
import { ARCHES, type Arch, hostArch } from '../hypervisor/arch.js';
import { currentImage } from '../image/manifest.js';

/** The current guest image of one architecture, or why there is none. */
export interface ArchImage {
  arch: Arch;
  hash?: string;
  kernel?: string;
  /** There is one, built for another version of the agent. */
  stale?: boolean;
}

/** Each architecture's current guest image (images of both live side by side in the cache). */
export async function imagesByArch(): Promise<ArchImage[]> {
  return Promise.all(
    ARCHES.map(async ({ name: arch }) => {
      try {
        const { manifest } = await currentImage(arch);
        return { arch, hash: manifest.hash, kernel: manifest.kernel.release };
      } catch (err) {
        return { arch, stale: isHullError(err, 'ERR_IMAGE_STALE') };
      }
    }),
  );
}

/**
 * One line for `hull env` and `hull check`: the host's architecture and each architecture's
 * image, `host x86_64; images: x86_64 c20b04dc63abc899 (6.1.0-57-amd64), arm64 none (hull
 * image build --arch arm64)`.
 */
export function formatImagesByArch(images: ArchImage[], host: Arch = hostArch()): string {
  const each = images.map((i) =>
    i.hash
      ? `${i.arch} ${i.hash} (${i.kernel})`
      : `${i.arch} ${i.stale ? 'stale' : 'none'} (\`hull image build${i.arch === host ? '' : ` --arch ${i.arch}`}\`)`,
  );
  return `host ${host}; images: ${each.join(', ')}`;
}
