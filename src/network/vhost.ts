import { access, constants } from 'node:fs/promises';

/**
 * Whether the host offers in-kernel virtio-net (vhost-net): packets then skip a trip through
 * QEMU's main loop. Hosts without the device (or the module) get QEMU's own virtio-net.
 */
export async function hostHasVhostNet(): Promise<boolean> {
  return access('/dev/vhost-net', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
}
