import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { HullError } from '../errors.js';

/**
 * Starts a long-lived helper (this same program with `args`: a container monitor, an exec's
 * waiter, the containerd shim's server) as a detached child. It reports on fd 3 with one
 * line, "ready DETAIL" or "error MESSAGE", and this returns once it has: the helper then lives
 * on alone. With `keepStdio` it keeps this process's stdin, stdout and stderr; otherwise none.
 */
export async function spawnDetachedHelper(
  args: string[],
  options: { keepStdio: boolean; cwd?: string; timeoutMs?: number },
): Promise<{ pid: number; detail: string }> {
  const child = spawn(process.execPath, [process.argv[1]!, ...args], {
    stdio: options.keepStdio
      ? ['inherit', 'inherit', 'inherit', 'pipe']
      : ['ignore', 'ignore', 'ignore', 'pipe'],
    cwd: options.cwd,
    detached: true,
  });
  const report = child.stdio[3]!;
  let text = '';
  report.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const reported = await new Promise<boolean>((resolve) => {
    const timer = options.timeoutMs ? setTimeout(() => resolve(false), options.timeoutMs) : undefined;
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    report.on('close', done);
    child.on('error', done);
  });
  const line = text.trim();
  if (reported && line.startsWith('ready')) {
    child.unref();
    (report as { destroy?: () => void }).destroy?.();
    return { pid: child.pid!, detail: line.slice('ready'.length).trim() };
  }
  if (!reported) {
    child.kill('SIGKILL');
    throw new HullError('ERR_INTERNAL', `the helper did not report within ${options.timeoutMs! / 1000}s`);
  }
  const code = await exited;
  throw new HullError(
    'ERR_INTERNAL',
    line.startsWith('error ') ? line.slice(6) : `the helper exited (${code}) before it was ready`,
  );
}

/** The helper's side: say "ready …" or "error …" once on fd 3, then close it. */
export async function reportToParent(line: string): Promise<void> {
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
