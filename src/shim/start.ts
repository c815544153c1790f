import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { Spec } from '../oci/spec.js';
import { checkSpecShape } from '../oci/spec-schema.js';
import { readConfigJson } from '../sandbox/bundle.js';
import { spawnDetachedHelper } from '../sys/detached-helper.js';
import { connectUnix } from '../sys/unix-socket.js';
import { type ShimFlags, serveArgs } from './flags.js';
import { podDir, SHIM_SOCKET, shimAddress, taskRole } from './pod-identity.js';

const START_TIMEOUT_MS = 10_000;

/** The annotations of the bundle in the current directory (containerd runs start there). */
export async function readBundleSpec(bundle: string): Promise<Pick<Spec, 'annotations' | 'linux'>> {
  const spec = await readConfigJson(join(bundle, 'config.json'));
  // Its annotations name the task's pod: they are checked, with the rest, before they are used.
  checkSpecShape(spec, join(bundle, 'config.json'));
  return spec;
}

/**
 * containerd's `start`: make sure the pod's shim server runs and print its address. A pod's
 * containers get the address of their sandbox's shim (one VM per pod); a sandbox or a lone
 * task gets a new server, detached from this process's stdout and stderr because containerd
 * reads them to the end. The address is also written to `<bundle>/address` for reconnecting.
 */
export async function startShim(flags: ShimFlags): Promise<string> {
  const role = taskRole(flags.id, await readBundleSpec(flags.bundle));
  const dir = podDir(flags, role.podId);
  const address = shimAddress(dir);
  const running = await answers(join(dir, SHIM_SOCKET));
  if (role.kind === 'container' && !running) {
    throw new HullError(
      'ERR_STATE',
      `pod ${role.podId} has no running hull shim: its sandbox task must be created first`,
    );
  }
  if (!running) await launchServer(flags);
  await writeFile(join(flags.bundle, 'address'), address);
  return address;
}

/** The pod's server, launched with no stdio of this process; it reports on fd 3 when serving. */
async function launchServer(flags: ShimFlags): Promise<void> {
  await spawnDetachedHelper(serveArgs(flags), {
    keepStdio: false,
    cwd: flags.bundle,
    timeoutMs: START_TIMEOUT_MS,
  });
}

/** Whether a server answers on the unix socket. */
function answers(path: string): Promise<boolean> {
  return connectUnix(path, AbortSignal.timeout(START_TIMEOUT_MS)).then(
    (socket) => {
      socket.destroy();
      return true;
    },
    () => false,
  );
}
