import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { logger } from '../log.js';
import { installRoot } from '../paths.js';

/**
 * How long a process's exit may wait for its client to read what is left in its output FIFOs,
 * at most, and at most while the client reads nothing at all. A client that reads slowly but
 * reads gets its last 64 KiB (a pipe's size) well within the bound; one that went away (a
 * detached `ctr run -d`) or never reads costs an exit the stall time once.
 */
export const FIFO_DRAIN_BOUND_MS = 5000;
export const FIFO_DRAIN_STALL_MS = 2000;
/** The helper bounds itself; this bounds the wait for a helper that somehow does not end. */
const HELPER_SLACK_MS = 1000;

export function hullFifoDrainPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-fifo-drain');
}

/**
 * Resolves once the readers of the output FIFOs open on `fds` (their write ends, the shim's)
 * have taken everything in them, or the drain gave up (the bounds above), or `signal` aborts.
 * Never rejects: what is at stake is a client's last output, never the exit itself.
 *
 * Why: ctr of containerd before 1.6.22 (Debian bookworm ships 1.6.20) closes its FIFOs as soon
 * as it learns of the exit (task.Delete closes the IO before waiting for its copy), so what
 * was still in a pipe when the shim reported the exit never reached ctr's stdout. The shim
 * reports an exit only once its output is in the FIFOs, so waiting until they are empty before
 * reporting it is enough. Pipes that are empty already cost one short helper run (FIONREAD,
 * which Node lacks: src/shim/fifo-drain/hull-fifo-drain.c).
 */
export function fifosDrained(fds: number[], signal: AbortSignal): Promise<void> {
  if (fds.length === 0 || signal.aborted) return Promise.resolve();
  const log = logger('stdio');
  return new Promise<void>((resolve) => {
    const child = spawn(
      hullFifoDrainPath(),
      [String(FIFO_DRAIN_BOUND_MS), String(FIFO_DRAIN_STALL_MS), ...fds.map((_, i) => String(3 + i))],
      { stdio: ['ignore', 'ignore', 'pipe', ...fds] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 1000) stderr += chunk.toString();
    });
    const stop = () => child.kill('SIGKILL');
    const timer = setTimeout(stop, FIFO_DRAIN_BOUND_MS + HELPER_SLACK_MS);
    signal.addEventListener('abort', stop, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
      resolve();
    };
    child.on('error', (err) => {
      log.warn({ err: err.message }, 'cannot wait for the client to read the output FIFOs');
      done();
    });
    child.on('close', (code) => {
      if (code !== 0 && !signal.aborted) {
        log.warn(
          { code, detail: stderr.trim() },
          'the client did not read all of the output FIFOs: the exit is reported anyway',
        );
      }
      done();
    });
  });
}
