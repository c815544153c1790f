import { mkdirSync } from 'node:fs';
import { AgentError } from './errors.js';
import { syscalls } from './syscalls.js';

/** Where the host's shared directory appears in the guest. */
export const SHARE_ROOT = '/run/hull/shared';

/**
 * The 9p tag and options; the tag is fixed by hull's QEMU driver (storage/share.ts on the host).
 * hull-init mounts the same share with the same options to build the startup snapshot
 * (share_mount in guest/image/hull-init.c): a change here belongs there too.
 */
const SHARE_TAG = 'hullshare';
const SHARE_OPTIONS = 'trans=virtio,version=9p2000.L,msize=262144,cache=mmap';

let mounting: Promise<void> | undefined;

/**
 * Mounts the sandbox share, once, when the first container needs it. Not at boot: a VM whose
 * share is mounted cannot be saved (QEMU's 9p device blocks migration while the guest has it
 * attached), and a VM saved before its first container is what a sandbox can be cloned from.
 */
export function mountShare(): Promise<void> {
  mounting ??= (async () => {
    // Synchronously, as the bundle's files are (containers.ts readPid).
    mkdirSync(SHARE_ROOT, { recursive: true });
    try {
      syscalls().mount(SHARE_TAG, SHARE_ROOT, '9p', 0, SHARE_OPTIONS);
    } catch (err) {
      throw new AgentError('runtime-failed', `cannot mount the sandbox share: ${(err as Error).message}`);
    }
  })();
  // A failed mount is tried again by the next container rather than failing every one after.
  mounting.catch(() => {
    mounting = undefined;
  });
  return mounting;
}
