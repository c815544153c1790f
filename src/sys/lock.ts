import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { sleep } from '../util/deadline.js';
import { formatIdentity, identityOf, isAlive, parseIdentity } from './process-identity.js';

/**
 * Serializes work on one directory (a container's, a template's, the image store's): a lock
 * file created exclusively, holding the holder's identity (pid and start time). A lock whose
 * holder has died is taken over, also when its pid now names another process. Waiting is
 * bounded by `signal`. An OS-level tool, below the sandbox that uses it.
 */
export async function withLock<T>(dir: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const path = join(dir, 'lock');
  for (;;) {
    try {
      const file = await open(path, 'wx');
      await file.writeFile(formatIdentity(identityOf(process.pid) ?? { pid: process.pid }));
      await file.close();
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new HullError('ERR_NOT_FOUND', `${dir} does not exist`);
      if (code !== 'EEXIST') throw err;
      const holder = parseIdentity(await readFile(path, 'utf8').catch(() => ''));
      if (holder && !isAlive(holder)) {
        await rm(path, { force: true });
        continue;
      }
      if (signal.aborted) {
        throw new HullError(
          'ERR_STATE',
          `another hull command working on ${dir} (pid ${holder?.pid}) did not finish in time`,
        );
      }
      await sleep(20, signal).catch(() => {});
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
