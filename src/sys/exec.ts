import { type ExecFileOptions, execFile } from 'node:child_process';
import { type ErrorCode, HullError } from '../errors.js';

export interface RunOptions extends Pick<ExecFileOptions, 'cwd' | 'env'> {
  signal?: AbortSignal;
  /** Error code used if the command fails; ERR_INTERNAL by default. */
  errorCode?: ErrorCode;
  /** What the command was for, used as the error's first words. */
  purpose?: string;
  input?: Buffer | string;
}

/**
 * Runs a host command to completion and returns its stdout. A failure becomes one HullError
 * line naming the purpose and the command's last line of stderr, which usually says why.
 */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { cwd: options.cwd, env: options.env, signal: options.signal, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const detail =
          (stderr || '').trim().split('\n').pop() ||
          ((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${file} is not installed` : err.message);
        const what = options.purpose ?? `${file} ${args.join(' ')}`;
        reject(
          new HullError(options.errorCode ?? 'ERR_INTERNAL', `${what} failed: ${detail}`, { cause: err }),
        );
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Finds an executable on PATH, or returns undefined. */
export async function which(name: string): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin').split(':')) {
    if (!dir) continue;
    const candidate = `${dir}/${name}`;
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}
