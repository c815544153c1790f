import { resolve } from 'node:path';
import { type HelperOptions, spawnDetachedHelper } from '../sys/detached-helper.js';
import type { GlobalOptions } from './global-options.js';
import { HELPER_NODE_OPTIONS } from './helper-node-options.js';

export { reportFailure, reportToParent } from '../sys/detached-helper.js';

/**
 * Starts a hull helper (the container monitor, or an exec's waiter) with this invocation's
 * global options, keeping the caller's stdio unless told not to: the fds the caller gave are
 * the ones it relays through (see spawnDetachedHelper).
 */
export function spawnHelper(
  globals: GlobalOptions,
  args: string[],
  options: Pick<HelperOptions, 'keepStdio' | 'wrapper' | 'onAsk' | 'name' | 'outputFd' | 'env'> = {
    keepStdio: true,
  },
): Promise<{ pid: number; detail: string }> {
  const globalArgs = [
    '--root',
    globals.root,
    // The helper reads the same configuration file (its state directory, its sizes).
    ...(globals.config ? ['--config', resolve(globals.config)] : []),
    ...(globals.log
      ? ['--log', globals.log, ...(globals.logFormat ? ['--log-format', globals.logFormat] : [])]
      : []),
    ...(globals.debug ? ['--debug'] : []),
  ];
  // With a terminal the process's stdio is the pty: like runc, keep none of the caller's fds.
  return spawnDetachedHelper([...globalArgs, ...args], { ...options, nodeOptions: HELPER_NODE_OPTIONS });
}
