import { realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The container program's startup snapshot (see startup-snapshot.ts): its files. */
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
