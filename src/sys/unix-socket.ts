import { connect, type Socket } from 'node:net';
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
