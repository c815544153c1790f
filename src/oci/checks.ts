import { HullError } from '../errors.js';
import type { Spec } from './spec.js';
import { checkSpecShape } from './spec-schema.js';
import { checkDevices, checkRlimits, checkSysctls } from './value-checks.js';

/**
 * Checks of a config.json that runc makes and hull must make too (the runtime-spec: a value
 * that cannot be mapped to the kernel MUST cause an error), plus those a VM adds: it cannot
 * share the host kernel's namespaces or send mounts back to the host. Each failure is one line
 * naming the field.
 */

const NAMESPACE_TYPES = new Set(['mount', 'network', 'uts', 'ipc', 'pid', 'user', 'cgroup', 'time']);

/**
 * Namespace types whose absence asks for the host's namespace, with what the user wrote to
 * ask for it, so the error names the option to change.
 */
const HOST_NAMESPACE_REQUESTS: Record<string, string> = {
  network: 'Kubernetes hostNetwork, --network host',
  pid: 'Kubernetes hostPID, --pid host',
  ipc: 'Kubernetes hostIPC, --ipc host',
};

/**
 * An annotation that accepts, for the listed types (comma-separated), the VM's own namespace
 * where the configuration asks for the host's: the container then shares the guest's PID, IPC
 * or network namespace (the agent's and the pod's processes), never the host's.
 */
export const VM_NAMESPACES_ANNOTATION = 'dev.hull.vm-namespaces';

/** Checks a parsed config.json: its fields' types and bounds first, then what they mean. */
export function checkSpec(spec: unknown, configPath: string): asserts spec is Spec {
  checkSpecShape(spec, configPath);
  checkNamespaces(spec, configPath);
  checkPropagation(spec, configPath);
  checkRlimits(spec, configPath);
  checkSysctls(spec, configPath, vmNamespacesOf(spec));
  checkDevices(spec, configPath);
}

/** The namespace types the annotation below accepts from the VM. */
function vmNamespacesOf(spec: Spec): Set<string> {
  return new Set(
    (spec.annotations?.[VM_NAMESPACES_ANNOTATION] ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  );
}

function checkNamespaces(spec: Spec, configPath: string): void {
  const namespaces = spec.linux?.namespaces ?? [];
  const seen = new Set<string>();
  for (const [index, ns] of namespaces.entries()) {
    if (!NAMESPACE_TYPES.has(ns?.type)) {
      throw new HullError(
        'ERR_CONFIG',
        `${configPath}: linux.namespaces[${index}].type ${JSON.stringify(ns?.type)} is not a namespace type: use one of ${[...NAMESPACE_TYPES].join(', ')}`,
      );
    }
    if (seen.has(ns.type)) {
      throw new HullError(
        'ERR_CONFIG',
        `${configPath}: linux.namespaces lists "${ns.type}" twice: keep one entry per type`,
      );
    }
    seen.add(ns.type);
  }
  if (!spec.linux) return;
  const acceptVm = vmNamespacesOf(spec);
  for (const [type, how] of Object.entries(HOST_NAMESPACE_REQUESTS)) {
    if (seen.has(type) || acceptVm.has(type)) continue;
    throw new HullError(
      'ERR_UNSUPPORTED',
      `${configPath}: linux.namespaces has no "${type}" entry, which asks for the host's ${type} namespace (${how}); a VM cannot share the host kernel's namespaces: give the container its own (or annotate ${VM_NAMESPACES_ANNOTATION}=${type} to share the VM's)`,
    );
  }
}

const SHARED_PROPAGATION = new Set(['shared', 'rshared']);

/**
 * A mount made inside the guest exists in the guest kernel only: it cannot propagate back to
 * the host, so shared propagation (Kubernetes' Bidirectional) is refused. Private and slave
 * propagation need nothing from the host and are kept.
 */
function checkPropagation(spec: Spec, configPath: string): void {
  const rootfs = spec.linux?.rootfsPropagation;
  if (typeof rootfs === 'string' && SHARED_PROPAGATION.has(rootfs)) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      `${configPath}: linux.rootfsPropagation "${rootfs}" would send the container's mounts to the host, which a VM cannot do: use "rslave" or "rprivate"`,
    );
  }
  for (const [index, mount] of (spec.mounts ?? []).entries()) {
    const shared = (mount.options ?? []).find((o) => SHARED_PROPAGATION.has(o));
    if (shared) {
      throw new HullError(
        'ERR_UNSUPPORTED',
        `${configPath}: mounts[${index}] (${mount.destination}) has "${shared}" propagation (Kubernetes Bidirectional), but a mount made in the VM cannot reach the host: use "rslave" (HostToContainer) or "rprivate"`,
      );
    }
  }
}
