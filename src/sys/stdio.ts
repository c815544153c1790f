import { fstatSync } from 'node:fs';

/** /dev/null's device number (major 1, minor 3), as the kernel encodes it in st_rdev. */
const DEV_NULL_RDEV = (1 << 8) | 3;

/** True when `fd` can give no input: closed, or /dev/null (a client that gave no stdin). */
export function readsNothing(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isCharacterDevice() && stat.rdev === DEV_NULL_RDEV;
  } catch {
    return true;
  }
}
