import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { HullError } from '../errors.js';
import { installRoot } from '../paths.js';
import { settledWithin } from '../util/deadline.js';
import { onLines } from '../util/lines.js';

/**
 * The caller's side of a container terminal. The caller (conmon, containerd's runc shim)
 * listens on a console socket and expects a pty master there, passed with SCM_RIGHTS, which
 * Node cannot send: hull-tty (src/sys/tty/hull-tty.c) makes the pty, sends the master, and
 * relays the slave over pipes. What the user types comes out of `input`; what the container
 * prints goes into `output`; window-size changes are reported through `onResize`.
 */
export interface HostTerminal {
  input: Readable;
  output: Writable;
  /** Calls `listener` with each new size, and at once with the current one if known. */
  onResize(listener: (rows: number, columns: number) => void): void;
  /**
   * Ends the output and waits (at most CLOSE_MS) for the helper to have written it all to the
   * terminal: killed at once, it would drop a short-lived process's last lines.
   */
  close(): Promise<void>;
}

const CLOSE_MS = 2000;

export function hullTtyPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-tty');
}

export async function openHostTerminal(consoleSocket: string, signal: AbortSignal): Promise<HostTerminal> {
  const child = spawn(hullTtyPath(), ['send', consoleSocket], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const control = child.stdio[3] as Readable;
  child.stdin.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    const fail = (why: string) =>
      reject(new HullError('ERR_CONFIG', `cannot use the console socket ${consoleSocket}: ${why}`));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('ready\n')) resolve();
    });
    child.on('error', (err) => fail(err.message));
    child.on('exit', () => fail(stderr.trim().replace(/^hull-tty: /, '') || 'the terminal helper exited'));
    signal.addEventListener('abort', () => fail('timed out'), { once: true });
  });
  const listeners: ((rows: number, columns: number) => void)[] = [];
  // The caller may size the terminal before the guest process exists: the last size is kept
  // and given to each listener when it starts listening.
  let last: [number, number] | undefined;
  onLines(control, (line) => {
    const [rows, columns] = line.split(' ').map(Number);
    if (!rows || !columns) return;
    last = [rows, columns];
    for (const l of listeners) l(rows, columns);
  });
  return {
    input: child.stdout,
    output: child.stdin,
    onResize: (listener) => {
      listeners.push(listener);
      if (last) listener(...last);
    },
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.stdin.end();
        await settledWithin(exited, CLOSE_MS);
      }
      child.kill('SIGTERM');
    },
  };
}
