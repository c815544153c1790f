import { createHash } from 'node:crypto';
import { createServer } from 'node:net';

/**
 * Whether this server is the one following the commands of runtime root `root`: the first to
 * listen on an abstract unix socket named after the root. The kernel lets one process hold a
 * name and frees it when that process ends, SIGKILL included, so a restarted server claims it
 * again and a second server on the same root (TCP beside a unix socket) does not read the
 * commands' output out from under the first. No file is left anywhere.
 */
export async function claimRoot(root: string): Promise<boolean> {
  const name = `\0hull-serve-${createHash('sha256').update(root).digest('hex').slice(0, 32)}`;
  const server = createServer((socket) => socket.destroy());
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(name, () => {
      // Held for the process's life, without keeping it alive.
      server.unref();
      resolve(true);
    });
  });
}
