import { constants } from 'node:os';
import { childProcess } from './builtins.js';
import { AgentError } from './errors.js';
import { OutputPipe } from './output-pipe.js';
import { GuestProcess } from './process.js';
import { Reaper } from './reaper.js';

/** The guest image's watcher (guest/image/hull-watch.c). */
const HULL_WATCH = '/usr/bin/hull-watch';
const MAX_PATH_BYTES = 4096;

/**
 * Starts hull-watch on `path` in the mount namespace of the container whose init is
 * `containerPid`, as a process the host follows like an exec (stdout: its records; stderr:
 * why it failed). It is this agent's own child, so Node reaps it; its exit is handed to a
 * reaper of its own, which GuestProcess waits on as on any other.
 */
export async function startWatcher(containerPid: number, path: string): Promise<GuestProcess> {
  if (!path.startsWith('/') || path.includes('\0') || Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw new AgentError('invalid', 'a watched path is absolute, without NUL, at most 4096 bytes');
  }
  const child = childProcess().spawn(HULL_WATCH, [String(containerPid), path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Read from now on: Node drops what an exited child's unread stdout held.
  const stdout = new OutputPipe(child.stdout);
  const stderr = new OutputPipe(child.stderr);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) =>
      reject(new AgentError('runtime-failed', `cannot start ${HULL_WATCH}: ${err.message}`)),
    );
  });
  const pid = child.pid!;
  const reaper = new Reaper();
  child.once('exit', (code, signal) => {
    // As a raw wait status: the signal number, or the exit code in the second byte.
    reaper.report(pid, signal ? constants.signals[signal] : (code ?? 0) << 8);
  });
  return new GuestProcess(pid, null, stdout, stderr, reaper);
}
