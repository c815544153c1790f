import type { ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { childProcess } from './builtins.js';
import { AgentError } from './errors.js';

/**
 * crun, the OCI executor inside the guest. Errors go to a JSON log file rather than stderr,
 * because stderr of `crun create` is the container's own stderr pipe.
 */
export interface CrunRun {
  child: ChildProcess;
  /** Resolves when crun itself exits (the container it made may live on). */
  done: Promise<void>;
}

/**
 * `stdio`: 'ignore' for crun's own commands, 'pipe' to read what one prints, or the three
 * descriptors a process it starts keeps as its stdio.
 */
export function crun(
  args: readonly string[],
  logFile: string,
  stdio: 'pipe' | 'ignore' | [number, number, number] = 'ignore',
): CrunRun {
  const child = childProcess().spawn(CRUN, crunArgs(args, logFile), {
    stdio:
      stdio === 'pipe' ? ['pipe', 'pipe', 'pipe'] : stdio === 'ignore' ? ['ignore', 'ignore', 'pipe'] : stdio,
  });
  const stderr: Buffer[] = [];
  if (stdio === 'ignore') child.stderr?.on('data', (c: Buffer) => stderr.push(c));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => reject(new AgentError('runtime-failed', `cannot run crun: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) return resolve();
      void crunFailure(
        args,
        logFile,
        Buffer.concat(stderr).toString().trim() || `exit ${code ?? signal}`,
      ).then(reject);
    });
  });
  return { child, done };
}

export const CRUN = '/usr/bin/crun';

/** crun's command line after its program: its log as JSON in `logFile`, then `args`. */
export function crunArgs(args: readonly string[], logFile: string): string[] {
  return ['--log', logFile, '--log-format', 'json', ...args];
}

/** A failed crun command, said by the last error it logged, else by `otherwise`. */
export async function crunFailure(
  args: readonly string[],
  logFile: string,
  otherwise: string,
): Promise<AgentError> {
  const logged = await lastError(logFile);
  return new AgentError('runtime-failed', `crun ${args[0]}: ${logged || otherwise}`);
}

/** The last error crun logged, without its JSON wrapping. */
async function lastError(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  await rm(logFile, { force: true });
  const lines = text.trim().split('\n').filter(Boolean);
  for (const line of lines.reverse()) {
    try {
      const entry = JSON.parse(line) as { msg?: string; level?: string };
      if (entry.msg && entry.level !== 'debug') return entry.msg;
    } catch {
      return line;
    }
  }
  return '';
}
