import { readFile } from 'node:fs/promises';

/**
 * This boot of the host (/proc/sys/kernel/random/boot_id): what is known only within one boot
 * (a memfd's inode number, a probe of this kernel) is keyed by it. Throws where it cannot be
 * read: a caller that can do without says what stands in for it.
 */
export async function hostBootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'latin1')).trim();
}
