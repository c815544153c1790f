import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { childProcess } from './builtins.js';
import { AgentError } from './errors.js';

/**
 * A container terminal in the guest. crun sends the pty master of a terminal process to a
 * console socket; Node cannot receive an fd, so hull-tty listens there, receives it, and
 * relays it over plain pipes: its stdout is what the process prints, its stdin what it reads,
 * and "ROWS COLS" lines on its fd 3 resize the terminal.
 */
export interface GuestTerminal {
  socket: string;
  input: Writable;
  output: Readable;
  resize(rows: number, columns: number): void;
}

export async function openGuestTerminal(socket: string): Promise<GuestTerminal> {
  const child: ChildProcess = childProcess().spawn('/usr/bin/hull-tty', ['recv', socket], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  const control = child.stdio[3] as Writable;
  control.on('error', () => {});
  child.stdin!.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(
      () => reject(new AgentError('runtime-failed', 'the terminal helper did not start')),
      10_000,
    );
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new AgentError('runtime-failed', `the terminal helper failed: ${stderr.trim()}`));
    });
  });
  return {
    socket,
    input: child.stdin!,
    output: child.stdout!,
    resize: (rows, columns) => control.write(`${rows} ${columns}\n`),
  };
}
