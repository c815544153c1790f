import type { Accel } from '../hypervisor/hypervisor.js';
import { vmmCgroupLimits } from '../hypervisor/qemu/qemu.js';
import type { Spec } from '../oci/spec.js';
import { type CgroupLimits, VmmCgroup } from '../sys/cgroup.js';

/**
 * The host cgroup of a sandbox: where the host (kubelet, systemd, a monitoring agent) looks
 * for the container — its `cgroupsPath` — holds the VMM and the process that owns it (the
 * monitor or the pod's shim), with the container's limits plus what the VM itself costs. The
 * container's own limits are applied again in the guest, by crun; these are the host's.
 */

/** The guest's own memory besides the container's: its kernel, the agent, their page cache. */
export const GUEST_BASE_MIB = 192;
/** CPU time the VMM and the monitor use besides the guest's vCPUs, as a fraction of one CPU. */
export const CPU_OVERHEAD = 0.25;

/**
 * The cgroup path a config.json asks for, as runc reads it: an absolute path as is; a
 * systemd-style `slice:prefix:name` (podman, Docker and the CRI with the systemd cgroup driver)
 * where systemd would put its scope (`/machine.slice/libpod-<id>.scope`); none, the sandbox's
 * own `/hull/<id>`. A relative path is taken from the root of the hierarchy.
 */
export function hostCgroupPath(spec: Pick<Spec, 'linux'>, id: string): string {
  const path = spec.linux?.cgroupsPath;
  if (!path) return VmmCgroup.defaultPath(id);
  if (path.startsWith('/')) return path;
  const parts = path.split(':');
  if (parts.length !== 3) return `/${path}`;
  const [slice, prefix, name] = parts as [string, string, string];
  const unit = prefix ? `${prefix}-${name}.scope` : name;
  return `${expandSlice(slice || 'system.slice')}/${unit}`;
}

/** systemd's slice nesting: `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`. */
function expandSlice(slice: string): string {
  if (slice === '-.slice') return '';
  const name = slice.replace(/\.slice$/, '');
  const words = name.split('-');
  return words.map((_, i) => `/${words.slice(0, i + 1).join('-')}.slice`).join('');
}

interface LinuxResources {
  memory?: { limit?: number };
  cpu?: { quota?: number; period?: number; shares?: number };
}

/**
 * The host's limits for a sandbox whose container has `resources`, in a VM of `memoryMiB`:
 *  - memory: the container's limit plus the guest's base, at most the VM's memory (or the VM's
 *    memory without a limit), twice for a clone of a template, plus what the VMM adds
 *    (vmmCgroupLimits);
 *  - CPU: the container's quota plus CPU_OVERHEAD of a period; its shares as they are;
 *  - tasks: the VMM's.
 */
export function hostCgroupLimits(
  resources: unknown,
  vm: { memoryMiB: number; accel: Accel; tcgCacheMiB?: number; clone?: boolean },
): CgroupLimits {
  const r = (resources ?? {}) as LinuxResources;
  const MiB = 2 ** 20;
  const limit = r.memory?.limit;
  const guestBytes =
    limit && limit > 0 ? Math.min(limit + GUEST_BASE_MIB * MiB, vm.memoryMiB * MiB) : vm.memoryMiB * MiB;
  const limits = vmmCgroupLimits(guestBytes, vm.accel, vm.tcgCacheMiB, vm.clone);
  const { quota, period, shares } = r.cpu ?? {};
  if (quota && quota > 0) {
    const periodUs = period && period > 0 ? period : 100_000;
    limits.cpu = { quotaUs: Math.round(quota + CPU_OVERHEAD * periodUs), periodUs };
  }
  if (shares && shares > 0) limits.cpuShares = shares;
  return limits;
}
