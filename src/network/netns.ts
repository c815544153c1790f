import { stat } from 'node:fs/promises';
import { HullError } from '../errors.js';
import { run } from '../sys/exec.js';
import { checkNamespacePath } from '../sys/namespaces.js';
import { systemTool } from '../sys/system-tool.js';

/**
 * Runs a host tool (ip, tc) inside a network namespace named by path, as a client made it
 * (`/run/netns/…`, `/proc/<pid>/ns/net`). nsenter refuses a path that is not a network
 * namespace, so a mistyped entry cannot make hull act on the host's own network.
 */
export async function runInNetns(
  netns: string,
  tool: string,
  args: readonly string[],
  options: { input?: string; signal?: AbortSignal; purpose: string },
): Promise<string> {
  return run(systemTool('nsenter'), [`--net=${netns}`, '--', systemTool(tool), ...args], {
    input: options.input,
    signal: options.signal,
    errorCode: 'ERR_NETWORK',
    purpose: options.purpose,
  });
}

/** Whether a network namespace path still names something (a pod's may be gone at teardown). */
export async function netnsExists(netns: string): Promise<boolean> {
  return Boolean(await stat(netns).catch(() => undefined));
}

/** A one-line error for a network namespace path the configuration names but cannot be used. */
export async function requireNetns(netns: string, signal?: AbortSignal): Promise<void> {
  const found = await checkNamespacePath(netns, 'network', signal);
  if (found === 'missing') {
    throw new HullError(
      'ERR_NETWORK',
      `the network namespace ${netns} named in linux.namespaces does not exist: create it first (ip netns add, or let the client make it), or drop its path`,
    );
  }
  if (found !== 'ok') {
    throw new HullError(
      'ERR_NETWORK',
      `${netns} named in linux.namespaces as the network namespace is not one: give the path of a network namespace (e.g. /run/netns/NAME)`,
    );
  }
}
