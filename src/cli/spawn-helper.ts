import { spawn } from 'node:child_process';
import { HullError } from '../errors.js';
import type { GlobalOptions } from './global-options.js';

/**
 * Starts a long-lived hull helper (the container monitor, or an exec's waiter) as a detached
 * child that keeps this process's stdin, stdout and stderr: the fds the caller gave are the
 * ones it relays through. It reports on fd 3 with one line, "ready PID" or "error MESSAGE",
 * and this returns once it has: the helper then lives on alone.
 */
export async function spawnHelper(
  globals: GlobalOptions,
  args: string[],
  options: { keepStdio: boolean } = { keepStdio: true },
): Promise<{ pid: number; detail: string }> {
  const globalArgs = [
    '--root',
    globals.root,
    ...(globals.log ? ['--log', globals.log, '--log-format', globals.logFormat] : []),
    ...(globals.debug ? ['--debug'] : []),
  ];
  const child = spawn(process.execPath, [process.argv[1]!, ...globalArgs, ...args], {
    // With a terminal the process's stdio is the pty: like runc, keep none of the caller's fds.
    stdio: options.keepStdio
      ? ['inherit', 'inherit', 'inherit', 'pipe']
      : ['ignore', 'ignore', 'ignore', 'pipe'],
    detached: true,
  });
  const report = child.stdio[3]!;
  let text = '';
  report.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    report.on('close', resolve);
    child.on('error', () => resolve());
  });
  const line = text.trim();
  if (line.startsWith('ready')) {
    child.unref();
    (report as { destroy?: () => void }).destroy?.();
    return { pid: child.pid!, detail: line.slice('ready'.length).trim() };
  }
  const code = await exited;
  throw new HullError(
    'ERR_INTERNAL',
    line.startsWith('error ') ? line.slice(6) : `the helper exited (${code}) before it was ready`,
  );
}

/** The helper's side: say "ready …" or "error …" once on fd 3, then close it. */
export async function reportToParent(line: string): Promise<void> {
  const { Socket } = await import('node:net');
  await new Promise<void>((resolve) => {
    try {
      const pipe = new Socket({ fd: 3, readable: false, writable: true });
      pipe.on('error', () => resolve());
      pipe.end(`${line}\n`, () => resolve());
    } catch {
      resolve();
    }
  });
}
