import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isHullError } from '../errors.js';
import { logger } from '../log.js';
import type { Spec } from '../oci/spec.js';
import { removeContainerLeftovers } from '../sandbox/container-dir.js';
import { runHostHooks } from '../sandbox/hooks.js';
import { POD_FILE } from '../sandbox/pod-claim.js';
import { monitorOf, requireAllowed } from '../sandbox/state.js';
import { isAlive, signalIfAlive } from '../sys/process-identity.js';
import { sleep } from '../util/deadline.js';
import { type ContainerRef, withContainer } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

/** How long the monitor gets to stop the VM before it is killed. */
const SHUTDOWN_GRACE_MS = 10_000;

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .description('delete a stopped container and everything it used on the host')
    .argument('<container-id>')
    .option('-f, --force', 'stop the container first if it is still running')
    .action(async (id: string, options: { force?: boolean }, command: Command) => {
      const deleting = withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        if (ref.state.status !== 'stopped') {
          if (!options.force) requireAllowed(ref.id, ref.state.status, 'delete');
          await stopMonitor(ref);
        }
        const spec = await readFile(join(ref.state.bundle, 'config.json'), 'utf8')
          .then((t) => JSON.parse(t) as Spec)
          .catch(() => undefined);
        if (spec) {
          await runHostHooks(spec, 'poststop', { ...ref.state, status: 'stopped' }).catch((err: unknown) =>
            logger('delete').warn({ err: String(err) }, 'poststop hook failed'),
          );
        }
        const pod = await readFile(join(ref.dir, POD_FILE), 'utf8').catch(() => undefined);
        await removeContainerLeftovers(ref.dir, ref.id, spec);
        if (pod) {
          // Loaded for a pod's member only: it brings the pod VM's protobuf API.
          const { leavePod } = await import('../sandbox/pod-member.js');
          await leavePod(ref.settings.root, pod, ref.id);
        }
      });
      // As runc's: a forced delete of a container that is already gone has nothing to do
      // (CRI-O's cleanup after a failed create counts on it).
      await (options.force ? deleting.catch(ignoreNotFound) : deleting);
    });
}

function ignoreNotFound(err: unknown): void {
  if (!isHullError(err, 'ERR_NOT_FOUND')) throw err;
}

/**
 * Ends the VM through the monitor, and the monitor itself if it does not go in time: the
 * recorded monitor only, never a process that has since taken its pid.
 */
export async function stopMonitor(ref: ContainerRef): Promise<void> {
  // Loaded here: the delete of a stopped container, podman's usual one, talks to no monitor.
  const { MonitorClient } = await import('../sandbox/monitor-client.js');
  const monitor = await MonitorClient.connect(ref.dir, ref.id, AbortSignal.timeout(5000)).catch(
    () => undefined,
  );
  if (monitor) {
    await monitor.shutdown(AbortSignal.timeout(5000)).catch(() => {});
    monitor.close();
  }
  const deadline = Date.now() + SHUTDOWN_GRACE_MS;
  const monitorProcess = monitorOf(ref.state);
  while (isAlive(monitorProcess) && Date.now() < deadline) await sleep(50);
  signalIfAlive(monitorProcess, 'SIGKILL');
  while (isAlive(monitorProcess)) await sleep(20);
}
