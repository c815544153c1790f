import type { Spec } from './spec.js';

/**
 * Namespace types a Kubernetes pod's containers name by path to share the pod sandbox's (the
 * CRI gives the sandbox container's /proc/<pid>/ns/<type>). The shim accepts such paths for
 * these types only, and the guest agent joins the sandbox container's namespaces of these
 * types in the guest; both read this one list, so they cannot disagree. For each, the
 * /proc/<pid>/ns entry has the type's name.
 */
export const POD_SHARED_NAMESPACES: ReadonlySet<string> = new Set(['ipc', 'uts', 'pid']);

/**
 * Namespace types CRI-O pins for a pod (pinns, under its namespaces_dir) and names in every
 * container's config, its sandbox's included. A VM cannot join the host's; as Kata's shim does,
 * the pod's sandbox gets the VM's own of these types instead, and the pod's other containers
 * join the sandbox's in the guest (POD_SHARED_NAMESPACES).
 */
export const POD_PINNED_NAMESPACES: ReadonlySet<string> = new Set(['ipc', 'uts']);

/**
 * Whether what a container's init leaves behind must be killed when it exits: unless the
 * container has a PID namespace of its own (whose end kills the rest), the processes it
 * started live on in the namespace it shares (a pod's), outside any task, holding its output
 * open and, once it is restarted, the ports and files it needs (shim/pod.ts killLeftovers).
 */
export function killsAllOnExit(spec: Pick<Spec, 'linux'>): boolean {
  return !spec.linux?.namespaces?.some((ns) => ns.type === 'pid' && !ns.path);
}
