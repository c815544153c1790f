import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { syscalls } from './syscalls.js';

/** A pipe's two descriptors, close-on-exec, made by the addon (Node makes only socketpairs). */
function pipe(): [read: number, write: number] {
  return syscalls().pipe();
}

/**
 * Stdio for a container process as runc gives it: pipes, so the process can reopen
 * /dev/stdout or /proc/self/fd/N (a socket cannot be reopened), and /dev/null for stdin when
 * the host sends none. `childFds` go to the spawned program; `closeChildEnds()` drops the agent's
 * copies of them once it has started.
 */
export interface ProcessPipes {
  childFds: [number, number, number];
  stdin: Writable | null;
  stdout: Readable;
  stderr: Readable;
  closeChildEnds(): void;
  /** Closes everything (the program could not be started). */
  destroy(): void;
}

export function processPipes(withStdin: boolean): ProcessPipes {
  const made: number[] = [];
  try {
    const input = withStdin ? pipe() : undefined;
    if (input) made.push(...input);
    const nullFd = input ? undefined : openSync('/dev/null', 'r');
    if (nullFd !== undefined) made.push(nullFd);
    const output = pipe();
    made.push(...output);
    const errors = pipe();
    made.push(...errors);
    // A pipe is a stream handle to libuv: read and write it as a socket, not with blocking fs calls.
    const stdin = input ? new Socket({ fd: input[1], readable: false, writable: true }) : null;
    const stdout = new Socket({ fd: output[0], readable: true, writable: false });
    const stderr = new Socket({ fd: errors[0], readable: true, writable: false });
    const childFds: [number, number, number] = [input ? input[0] : nullFd!, output[1], errors[1]];
    let childEndsOpen = true;
    const closeChildEnds = () => {
      if (!childEndsOpen) return;
      childEndsOpen = false;
      for (const fd of childFds) closeSync(fd);
    };
    return {
      childFds,
      stdin,
      stdout,
      stderr,
      closeChildEnds,
      destroy: () => {
        closeChildEnds();
        stdin?.destroy();
        stdout.destroy();
        stderr.destroy();
      },
    };
  } catch (err) {
    for (const fd of made) {
      try {
        closeSync(fd);
      } catch {}
    }
    throw err;
  }
}
