import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** The new file's mode, less the umask, as for writeFile (default 0o666). */
  mode?: number;
  /** Checked before the file is written and again before it replaces the old one. */
  signal?: AbortSignal;
}

/**
 * Replaces the file at `path` with `data` so that a reader at any moment finds the old
 * contents or the new, whole: the data goes to a temporary file in the same directory (a
 * rename does not cross filesystems), which is then renamed over `path`. The temporary name is
 * new each time and created exclusively, so two writers never share one, and nothing is
 * written through a file or symlink someone left at that name. On failure the temporary file
 * is removed and `path` is as it was. Not durable across a host crash (nothing is fsynced):
 * callers keep records that a lost write only makes stale.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  options.signal?.throwIfAborted();
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const file = await open(temporary, 'wx', options.mode ?? 0o666);
    try {
      await file.writeFile(data);
    } finally {
      await file.close();
    }
    options.signal?.throwIfAborted();
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}
