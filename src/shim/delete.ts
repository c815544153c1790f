import { constants } from 'node:os';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { DeleteResponseSchema } from '../gen/containerd/task/v2/shim_pb.js';
import type { Spec } from '../oci/spec.js';
import { hostCgroupPath } from '../sandbox/host-cgroup.js';
import { VmmCgroup } from '../sys/cgroup.js';
import { HostMounter, removeUnmounted } from '../sys/mount.js';
import { killProcessesMentioning } from '../sys/processes.js';
import type { ShimFlags } from './flags.js';
import { podDir, removeShimsDirIfEmpty, taskRole } from './pod-identity.js';
import { unmountRootfs } from './rootfs.js';
import { readBundleSpec } from './start.js';

/**
 * containerd's `delete`, run when a task's shim is gone (crashed, killed) or failed to start:
 * remove what the shim would have — the task's rootfs mount and, for the task that owned the
 * pod's VM, the VM and its directory. Prints the binary DeleteResponse containerd expects.
 */
export async function deleteShim(flags: ShimFlags): Promise<Uint8Array> {
  const mounter = new HostMounter();
  await unmountRootfs(mounter, flags.bundle).catch(() => {});
  const spec: Pick<Spec, 'annotations' | 'linux'> = await readBundleSpec(flags.bundle).catch(() => ({
    annotations: {},
  }));
  const role = taskRole(flags.id, spec);
  if (role.kind !== 'container') {
    const dir = podDir(flags, role.podId);
    await killProcessesMentioning(dir);
    // The shim that would have removed the VM's cgroup when QEMU exited is gone.
    await (await VmmCgroup.of(hostCgroupPath(spec, flags.id))).remove().catch(() => {});
    await removeUnmounted(mounter, dir).catch(() => {});
    await removeShimsDirIfEmpty(dir);
  }
  return toBinary(
    DeleteResponseSchema,
    create(DeleteResponseSchema, {
      pid: 0,
      exitStatus: 128 + constants.signals.SIGKILL,
      exitedAt: timestampFromDate(new Date()),
    }),
  );
}
