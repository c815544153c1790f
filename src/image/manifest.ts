import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { Arch } from '../hypervisor/arch.js';
import type { DeviceDiscovery } from '../hypervisor/hypervisor.js';
import { agentBundlePath, imagesDir } from '../paths.js';
import { writeFileAtomic } from '../sys/atomic-file.js';

/** What a built guest image is made of; written beside its files and read at every start. */
export interface ImageManifest {
  hash: string;
  /** The guest architecture; images built before there was a choice are x86_64. */
  arch?: Arch;
  kernel: { kind: 'debian' | 'minimal'; release: string; source: string; deviceDiscovery: DeviceDiscovery };
  /** sha256 of the agent bundle inside the image: a host with another agent refuses it. */
  agentSha256: string;
  builtAt: string;
}

export interface GuestImage {
  dir: string;
  kernel: string;
  initrd: string;
  rootfs: string;
  manifest: ImageManifest;
}

export const IMAGE_FILES = { kernel: 'kernel.elf', initrd: 'initrd.cpio', rootfs: 'rootfs.erofs' } as const;

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

export function imageAt(dir: string, manifest: ImageManifest): GuestImage {
  return {
    dir,
    kernel: join(dir, IMAGE_FILES.kernel),
    initrd: join(dir, IMAGE_FILES.initrd),
    rootfs: join(dir, IMAGE_FILES.rootfs),
    manifest,
  };
}

/**
 * The file naming the current image of an architecture. Images of every architecture live
 * side by side in imagesDir(); x86_64's pointer keeps the name it had before there was a choice.
 */
function currentPointer(arch: Arch): string {
  return join(imagesDir(), arch === 'x86_64' ? 'current' : `current-${arch}`);
}

export async function markCurrent(hash: string, arch: Arch = 'x86_64'): Promise<void> {
  await writeFileAtomic(currentPointer(arch), `${hash}\n`);
}

/**
 * The image `hull image build` made last. Fails with a one-line error naming the fix when
 * there is none, or when it holds an agent other than the one beside this hull.
 */
export async function currentImage(arch: Arch = 'x86_64'): Promise<GuestImage> {
  let hash: string;
  let manifest: ImageManifest;
  const foreignWord = arch === 'x86_64' ? '' : `${arch} `;
  const buildCommand = `hull image build${arch === 'x86_64' ? '' : ` --arch ${arch}`}`;
  // Every VM's start reads these small files and hashes the agent (114 KB): synchronously,
  // which took 0.8 ms where the streamed hash and the reads through the thread pool took 2.5 to 6.
  try {
    hash = readFileSync(currentPointer(arch), 'utf8').trim();
    manifest = JSON.parse(readFileSync(join(imagesDir(), hash, 'manifest.json'), 'utf8')) as ImageManifest;
  } catch (err) {
    throw new HullError(
      'ERR_IMAGE_MISSING',
      `no ${foreignWord}guest image in ${imagesDir()}: run \`${buildCommand}\` first`,
      {
        cause: err,
      },
    );
  }
  let agentSha: string | undefined;
  try {
    agentSha = createHash('sha256').update(readFileSync(agentBundlePath())).digest('hex');
  } catch {
    // An installation without the agent bundle beside it cannot rebuild; trust the image.
  }
  if (agentSha && agentSha !== manifest.agentSha256) {
    throw new HullError(
      'ERR_IMAGE_STALE',
      `the ${foreignWord}guest image holds another version of the agent: run \`${buildCommand}\``,
    );
  }
  return imageAt(join(imagesDir(), hash), manifest);
}

export interface ListedImage {
  hash: string;
  arch: Arch;
  kernel: string;
  builtAt: string;
  /** The current image of its architecture (the one sandboxes of that architecture boot). */
  current: boolean;
}

/** Every built image in imagesDir(), of every architecture, newest first. */
export async function listImages(): Promise<ListedImage[]> {
  const entries = await readdir(imagesDir(), { withFileTypes: true }).catch(() => []);
  const images: ListedImage[] = [];
  for (const entry of entries) {
    if (!/^[0-9a-f]{16}$/.test(entry.name)) continue;
    let manifest: ImageManifest;
    try {
      manifest = JSON.parse(
        await readFile(join(imagesDir(), entry.name, 'manifest.json'), 'utf8'),
      ) as ImageManifest;
    } catch {
      continue; // a build in progress, or not an image
    }
    const arch = manifest.arch ?? 'x86_64';
    const current = await readFile(currentPointer(arch), 'utf8').then(
      (hash) => hash.trim() === manifest.hash,
      () => false,
    );
    images.push({
      hash: manifest.hash,
      arch,
      kernel: `${manifest.kernel.release} (${manifest.kernel.kind})`,
      builtAt: manifest.builtAt,
      current,
    });
  }
  return images.sort((a, b) => b.builtAt.localeCompare(a.builtAt));
}
