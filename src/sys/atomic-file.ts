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
 *
 * The name is the writer's pid and a random part from Math.random, not node:crypto: the
 * exclusive create, not the name, keeps a writer off another's file, and loading node:crypto
 * cost 2.3 ms of the start of every hull command whose modules include this one.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  options.signal?.throwIfAborted();
  const unique = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const temporary = join(dirname(path), `.${basename(path)}.${unique}.tmp`);
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
