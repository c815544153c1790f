import { chmod } from 'node:fs/promises';
import { connect, type Server, type Socket } from 'node:net';
import { raceSignal } from '../util/deadline.js';

/** Connects to a unix socket; rejects if nothing listens there or `signal` aborts first. */
export async function connectUnix(path: string, signal: AbortSignal): Promise<Socket> {
  const socket = connect(path);
  try {
    await raceSignal(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      signal,
    );
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket;
}

/**
 * Listens on a unix socket only root may connect to (0600): the socket lives in a private
 * directory too, but its own mode says so wherever it is.
 */
export async function listenPrivately(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
}
