import { createHash } from 'node:crypto';
import { rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VM_SIZE_LIMITS } from '../config/settings.js';
import { HullError } from '../errors.js';
import { clip } from '../oci/shape.js';
import type { Spec } from '../oci/spec.js';
import { defaultRuntimeRoot } from '../paths.js';
import { defaultMemoryMiB, defaultVcpus } from '../sandbox/runtime.js';
import type { ShimFlags } from './flags.js';

/** Annotations containerd's CRI plugin puts on every task of a pod. */
export const CRI = {
  containerType: 'io.kubernetes.cri.container-type',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  cpuPeriod: 'io.kubernetes.cri.sandbox-cpu-period',
  cpuQuota: 'io.kubernetes.cri.sandbox-cpu-quota',
  memory: 'io.kubernetes.cri.sandbox-memory',
} as const;

/** Annotations CRI-O puts on every container of a pod (its sandbox's too). */
export const CRIO = {
  containerType: 'io.kubernetes.cri-o.ContainerType',
  sandboxId: 'io.kubernetes.cri-o.SandboxID',
} as const;

/**
 * Where a task belongs. A pod's sandbox task and a lone task (`ctr run`) each get a VM and a
 * shim of their own; a pod's other containers join their sandbox's VM, through its shim.
 */
export type TaskRole =
  | { kind: 'sandbox'; podId: string }
  | { kind: 'single'; podId: string }
  | { kind: 'container'; podId: string };

export function taskRole(id: string, spec: Pick<Spec, 'annotations'>): TaskRole {
  const annotations = spec.annotations ?? {};
  // containerd's CRI plugin or CRI-O: both say the same in their own words.
  const type = annotations[CRI.containerType] ?? annotations[CRIO.containerType];
  const sandboxId = annotations[CRI.sandboxId] ?? annotations[CRIO.sandboxId];
  if (type === 'container' && sandboxId) return { kind: 'container', podId: sandboxId };
  if (type === 'sandbox') return { kind: 'sandbox', podId: id };
  return { kind: 'single', podId: id };
}

/**
 * The directory of one pod's shim: its socket and its VM. Named by a hash of containerd's
 * socket, the namespace and the pod, so two containerds (or namespaces) never share a shim,
 * and short, because unix socket paths hold 107 bytes and pod ids alone are 64.
 */
export function podDir(flags: Pick<ShimFlags, 'address' | 'namespace'>, podId: string): string {
  const hash = createHash('sha256').update(`${flags.address}\0${flags.namespace}\0${podId}`).digest('hex');
  return join(defaultRuntimeRoot(), 'shim', hash.slice(0, 16));
}

export const SHIM_SOCKET = 'shim.sock';

/** Removes the directory of all pods' shims once the last is gone (another may be starting). */
export async function removeShimsDirIfEmpty(podDirectory: string): Promise<void> {
  await rmdir(dirname(podDirectory)).catch(() => {});
}

export function shimAddress(dir: string): string {
  return `unix://${join(dir, SHIM_SOCKET)}`;
}

/**
 * The VM's size from the pod's sizing hints, added to hull's defaults as Kata does: the
 * defaults run the guest itself, the hints are what the pod's containers were promised.
 */
export function vmSize(spec: Pick<Spec, 'annotations'>): { vcpus: number; memoryMiB: number } {
  const annotations = spec.annotations ?? {};
  const number = (key: string) => {
    const value = Number(annotations[key]);
    return Number.isFinite(value) && value > 0 ? value : 0;
  };
  const memory = annotations[CRI.memory];
  if (memory !== undefined && !/^\d{1,16}$/.test(memory)) {
    throw new HullError(
      'ERR_CONFIG',
      `the pod's memory hint ${CRI.memory}=${clip(memory)} is not a number of bytes: give a whole number from 0`,
    );
  }
  const period = number(CRI.cpuPeriod);
  const quota = number(CRI.cpuQuota);
  const extraCpus = period > 0 && quota > 0 ? Math.ceil(quota / period) : 0;
  const extraMiB = Math.ceil(number(CRI.memory) / (1024 * 1024));
  const size = { vcpus: defaultVcpus() + extraCpus, memoryMiB: defaultMemoryMiB() + extraMiB };
  // The hints are the pod's limits, added to the VM's own size: a VM that large cannot start.
  if (size.vcpus > VM_SIZE_LIMITS.vcpus.max || size.memoryMiB > VM_SIZE_LIMITS.memoryMiB.max) {
    throw new HullError(
      'ERR_CONFIG',
      `the pod's sizing hints (${CRI.cpuQuota}, ${CRI.cpuPeriod}, ${CRI.memory}) ask for a VM of ${size.vcpus} vCPUs and ${size.memoryMiB} MiB: hull starts VMs of at most ${VM_SIZE_LIMITS.vcpus.max} vCPUs and ${VM_SIZE_LIMITS.memoryMiB.max} MiB; lower the pod's limits`,
    );
  }
  return size;
}
