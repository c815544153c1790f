import { closeSync, constants, fstatSync, openSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * The container program's startup snapshot (see startup-snapshot.ts): its files, and the rules
 * bin/hull gives it to Node under, as Node checks them (for tests).
 */
export const CONTAINER_BLOB = 'hull-container.blob';
/** A file whose mtime is that of the node binary that made the blob (bin/hull compares them). */
export const SNAPSHOT_STAMP = 'hull-snapshot.node';

/**
 * The bundle directory a script that starts hull loads its programs from (its real path:
 * dist/bundle for dist/bundle/hull.cjs, and for bin/hull, which requires
 * ../dist/bundle/hull.cjs); undefined when there is none.
 */
export function bundleDirOf(script: string | undefined): string | undefined {
  if (!script) return undefined;
  try {
    const real = realpathSync(script);
    return basename(real) === 'hull.cjs'
      ? dirname(real)
      : realpathSync(join(dirname(real), '..', 'dist', 'bundle'));
  } catch {
    return undefined;
  }
}

/** Whether `blob` may be given to `node` (the rules are in startup-snapshot.ts), checked by Node itself. */
export function snapshotUsable(blob: string, node = process.execPath, env = process.env): boolean {
  if (env.NODE_OPTIONS) return false;
  const euid = process.geteuid?.();
  let fd: number;
  try {
    fd = openSync(blob, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.uid !== euid || (info.mode & 0o022) !== 0) return false;
    const stamp = statSync(join(dirname(blob), SNAPSHOT_STAMP), { bigint: true });
    return stamp.uid === BigInt(info.uid) && stamp.mtimeNs === statSync(node, { bigint: true }).mtimeNs;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
