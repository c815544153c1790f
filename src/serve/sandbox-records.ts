import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageProcessConfig } from '../container-images/store.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import type { SandboxInfo } from './api-types.js';
import { readRecordDirs, removeRecordDir } from './record-dirs.js';
import type { SandboxAddress } from './sandbox-address.js';

/**
 * What serve keeps of each sandbox, beside the container's own state: under
 * `<root>/@serve/sandboxes/<id>/` (`@` is never in a container ID, so this is no container's
 * directory). It lives as long as the sandbox, so a restarted server finds every sandbox, its
 * metadata and its time to live again.
 */
export interface SandboxRecord extends Omit<SandboxInfo, 'expiresAt' | 'status'> {
  /** When the server kills it (ms since the epoch). */
  expiresAtMs: number;
  /** The environment, working directory and user commands start from (the image's). */
  process: ImageProcessConfig;
  /** Network 'internet': the sandbox's namespace and address on serve's bridge. */
  internet?: SandboxAddress;
  /** The host port of each sandbox port given a URL (`sandbox.ports.url`). */
  ports?: Record<string, number>;
  /**
   * Paused to disk (sandbox.pause()): its VM saved in `<dir>/saved`, no QEMU running, and
   * its time to live stopped with `remainingMs` left, given back when it is resumed.
   */
  paused?: { at: string; remainingMs: number };
}

const RECORD_FILE = 'sandbox.json';

export function sandboxesDir(root: string): string {
  return join(root, '@serve', 'sandboxes');
}

export function sandboxDir(root: string, id: string): string {
  return join(sandboxesDir(root), id);
}

/**
 * A sandbox's writable root disk (storage/rootfs-disks.ts): the one file a bundle's
 * `dev.hull.rootfs.disk` may name for the container of this ID (checked by the monitor).
 */
export function sandboxDiskPath(root: string, id: string): string {
  return join(sandboxDir(root, id), 'disk.raw');
}

/** Where a paused sandbox's VM is saved (snapshot/state-file.ts's files). */
export function savedDir(root: string, id: string): string {
  return join(sandboxDir(root, id), 'saved');
}

export async function writeRecord(root: string, record: SandboxRecord): Promise<void> {
  const path = join(sandboxDir(root, record.sandboxId), RECORD_FILE);
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

export async function makeSandboxDir(root: string, id: string): Promise<string> {
  const dir = sandboxDir(root, id);
  for (let attempt = 0; ; attempt++) {
    await mkdir(sandboxesDir(root), { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (err) {
      // The last sandbox's removal took the parent away this instant: make it again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 2) throw err;
    }
  }
}

/** Every record under the root; a directory without one (a create cut short) is `incomplete`. */
export function readRecords(root: string): Promise<{ records: SandboxRecord[]; incomplete: string[] }> {
  return readRecordDirs<SandboxRecord>(sandboxesDir(root), /^sb-[0-9a-f]{16}$/, RECORD_FILE);
}

export function removeSandboxDir(root: string, id: string): Promise<void> {
  return removeRecordDir(sandboxDir(root, id));
}
