import { childProcess } from './builtins.js';
import { AgentError } from './errors.js';

/**
 * Runs one of the guest's tools (ip, modprobe, date) to completion, with `input` on its stdin;
 * a failure is an AgentError ending in the tool's last line of stderr, which says why.
 */
export function runTool(file: string, args: string[], options: { input?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = childProcess().execFile(file, args, { timeout: 30_000 }, (err, _out, stderr) => {
      if (!err) return resolve();
      const detail = String(stderr || err.message)
        .trim()
        .split('\n')
        .pop();
      reject(new AgentError('runtime-failed', `${file} ${args.join(' ')}: ${detail}`));
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
