import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { logger } from '../log.js';
import { containerImagesDir } from '../paths.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { run } from '../sys/exec.js';
import { withLock } from '../sys/lock.js';
import { withTimeout } from '../util/deadline.js';
import { type ImageReference, parseImageReference } from './reference.js';

/** How long one pull (manifest, layers, unpacking) may take. */
const PULL_TIMEOUT_MS = 15 * 60_000;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** What a sandbox takes from its image's configuration. */
export interface ImageProcessConfig {
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
}

/** A pulled image: its unpacked root filesystem is read-only, shared by every sandbox made from it. */
export interface PulledImage {
  digest: string;
  /** umoci's bundle: `rootfs/` and the `config.json` it made from the image's configuration. */
  bundleDir: string;
  rootfs: string;
  /** Its erofs disk for sandboxes (see sandbox-rootfs.ts), made at first use, beside the bundle. */
  disk: string;
  config: ImageProcessConfig;
}

export interface StoredImage {
  digest: string;
  references: string[];
  pulledAt: string;
  sizeBytes: number;
}

/**
 * Container images pulled from registries with skopeo and unpacked once with umoci, cached by
 * manifest digest: `<dir>/<hex>/` holds the OCI layout, the unpacked bundle, image.json and,
 * once a sandbox was made from it, its erofs disk (rootfs.erofs);
 * `<dir>/references.json` maps each reference pulled to its digest (a reference is pulled once,
 * then served from the cache, as `--pull missing` does).
 */
export class ContainerImageStore {
  private readonly pulling = new Map<string, Promise<PulledImage>>();

  constructor(readonly dir: string = containerImagesDir()) {}

  async pull(rawReference: string, signal: AbortSignal): Promise<PulledImage> {
    const reference = parseImageReference(rawReference);
    const known = (await this.references())[reference.canonical];
    if (known) {
      const image = await this.open(known).catch(() => undefined);
      if (image) return image;
    }
    let pulling = this.pulling.get(reference.canonical);
    if (!pulling) {
      pulling = this.fetch(reference, signal).finally(() => this.pulling.delete(reference.canonical));
      this.pulling.set(reference.canonical, pulling);
    }
    return pulling;
  }

  /** A cached image by digest, or ERR_NOT_FOUND. */
  async open(digest: string): Promise<PulledImage> {
    if (!DIGEST.test(digest)) throw new HullError('ERR_NOT_FOUND', `${digest} is not an image digest`);
    const bundleDir = join(this.imageDir(digest), 'bundle');
    let spec: { process?: Partial<ImageProcessConfig> };
    try {
      spec = JSON.parse(await readFile(join(bundleDir, 'config.json'), 'utf8'));
    } catch {
      throw new HullError('ERR_NOT_FOUND', `image ${digest} is not in the cache: pull it again`);
    }
    return {
      digest,
      bundleDir,
      rootfs: join(bundleDir, 'rootfs'),
      disk: join(this.imageDir(digest), 'rootfs.erofs'),
      config: {
        env: spec.process?.env ?? [],
        cwd: spec.process?.cwd || '/',
        user: spec.process?.user ?? { uid: 0, gid: 0 },
      },
    };
  }

  async list(): Promise<StoredImage[]> {
    const references = await this.references();
    const images: StoredImage[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const info = await readFile(join(this.dir, name, 'image.json'), 'utf8')
        .then((text) => JSON.parse(text) as Omit<StoredImage, 'references'>)
        .catch(() => undefined);
      if (!info) continue;
      const refs = Object.entries(references)
        .filter(([, digest]) => digest === info.digest)
        .map(([ref]) => ref);
      images.push({ ...info, references: refs.sort() });
    }
    return images.sort((a, b) => a.pulledAt.localeCompare(b.pulledAt));
  }

  /** Removes every cached image whose digest is not in `inUse`; returns the digests removed. */
  async prune(inUse: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    await this.locked(async () => {
      for (const image of await this.list()) {
        if (inUse.has(image.digest)) continue;
        await rm(this.imageDir(image.digest), { recursive: true, force: true });
        removed.push(image.digest);
      }
      const references = await this.references();
      for (const [ref, digest] of Object.entries(references)) {
        if (removed.includes(digest)) delete references[ref];
      }
      await this.writeReferences(references);
    });
    return removed;
  }

  private imageDir(digest: string): string {
    return join(this.dir, digest.slice('sha256:'.length));
  }

  private async fetch(reference: ImageReference, outer: AbortSignal): Promise<PulledImage> {
    const signal = withTimeout(outer, PULL_TIMEOUT_MS);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const work = join(this.dir, `.pull-${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(work);
      const layout = join(work, 'oci');
      // argv only: the reference was checked by parseImageReference, and the transport is ours.
      await run(
        'skopeo',
        [
          'copy',
          '--quiet',
          ...(reference.insecure ? ['--src-tls-verify=false'] : []),
          `docker://${reference.canonical}`,
          `oci:${layout}:latest`,
        ],
        { signal, errorCode: 'ERR_REGISTRY', purpose: `pulling ${reference.canonical}` },
      );
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
        manifests?: { digest?: string }[];
      };
      const digest = index.manifests?.[0]?.digest ?? '';
      if (!DIGEST.test(digest)) {
        throw new HullError('ERR_REGISTRY', `pulling ${reference.canonical} gave no sha256 manifest digest`);
      }
      const existing = await this.open(digest).catch(() => undefined);
      if (!existing) {
        await run('umoci', ['unpack', '--image', `${layout}:latest`, join(work, 'bundle')], {
          signal,
          errorCode: 'ERR_REGISTRY',
          purpose: `unpacking ${reference.canonical}`,
        });
        const sizeBytes = Number((await run('du', ['-sb', join(work, 'bundle')], { signal })).split('\t')[0]);
        const info = { digest, pulledAt: new Date().toISOString(), sizeBytes };
        await writeFile(join(work, 'image.json'), `${JSON.stringify(info, null, 2)}\n`);
        // Another pull of the same digest may have finished first: then this copy goes.
        await rename(work, this.imageDir(digest)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
        });
      }
      await this.locked(async () => {
        const references = await this.references();
        references[reference.canonical] = digest;
        await this.writeReferences(references);
      });
      logger('container-images').info({ reference: reference.canonical, digest }, 'image pulled');
      return await this.open(digest);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private async references(): Promise<Record<string, string>> {
    return readFile(join(this.dir, 'references.json'), 'utf8')
      .then((text) => JSON.parse(text) as Record<string, string>)
      .catch(() => ({}));
  }

  private async writeReferences(references: Record<string, string>): Promise<void> {
    await writeFileAtomic(join(this.dir, 'references.json'), `${JSON.stringify(references, null, 2)}\n`);
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return withLock(this.dir, AbortSignal.timeout(30_000), fn);
  }
}
