import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { LineSink } from '../log.js';

/**
 * The shim's log: the `log` FIFO containerd reads in the bundle, so shim lines appear in
 * containerd's own log. A line that cannot be written (containerd restarting, the pipe full)
 * is dropped rather than blocking or failing the shim. Without a reader there is no log.
 */
export function openShimLog(bundle: string): (LineSink & { close(): void }) | undefined {
  let fd: number;
  try {
    fd = openSync(join(bundle, 'log'), constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  return {
    write(line: string) {
      try {
        writeSync(fd, line);
      } catch {
        // EPIPE (containerd gone) or EAGAIN (pipe full): this line is lost, the shim goes on.
      }
    },
    close: () => closeSync(fd),
  };
}
