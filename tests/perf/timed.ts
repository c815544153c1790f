import { spawnSync } from 'node:child_process';

/** Runs a command to its end and returns how long it took, in ms; a failure throws. */
export function timed(command: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${command} failed (${r.status}): ${r.stderr.toString().trim()}`);
  return ms;
}
