import { Socket } from 'node:net';
import { onLines } from '../../src/util/lines.js';

/**
 * Exit statuses of processes reaped by hull-init (PID 1). Containers made by `crun create`
 * are reparented to PID 1, so only it can wait for them; it reports "PID STATUS" lines on the
 * agent's fd HULL_REAPER_FD. A status can arrive before anyone asks (a process that exits at
 * once), so unclaimed ones are kept until claimed.
 */
export class Reaper {
  private readonly exited = new Map<number, number>();
  private readonly waiters = new Map<number, (status: number) => void>();

  /** Starts reading reports from `fd`; without a reaper fd (not PID 1's child) it stays idle. */
  listen(fd: number | undefined): void {
    if (fd === undefined || Number.isNaN(fd)) return;
    // A pipe is a stream handle to libuv: read it as a socket, not with blocking fs reads.
    onLines(new Socket({ fd, readable: true, writable: false }), (line) => {
      const [pid, status] = line.split(' ').map(Number);
      if (pid !== undefined && status !== undefined) this.report(pid, status);
    });
  }

  report(pid: number, rawStatus: number): void {
    const waiter = this.waiters.get(pid);
    if (waiter) {
      this.waiters.delete(pid);
      waiter(rawStatus);
    } else {
      this.exited.set(pid, rawStatus);
    }
  }

  /** Resolves with the raw wait status of `pid` once it has exited. */
  wait(pid: number): Promise<number> {
    const status = this.exited.get(pid);
    if (status !== undefined) {
      this.exited.delete(pid);
      return Promise.resolve(status);
    }
    return new Promise((resolve) => this.waiters.set(pid, resolve));
  }
}

/** Exit code as runc reports it: the code, or 128 + the signal that killed the process. */
export function exitCodeOf(rawStatus: number): number {
  const signal = rawStatus & 0x7f;
  return signal === 0 ? (rawStatus >> 8) & 0xff : 128 + signal;
}
