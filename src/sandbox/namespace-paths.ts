import { HullError } from '../errors.js';
import { checkNamespacePath, isPinnedNamespace } from '../sys/namespaces.js';
import type { Bundle } from './bundle.js';

/** A lone container (the OCI command line, a task outside a pod) can join none. */
export const NO_JOINABLE_NAMESPACES: ReadonlySet<string> = new Set();

/**
 * Checks the namespace entries that name a path, as runc does before it joins them: the path
 * must exist and be a namespace of the entry's type. Then, unlike runc, hull can join only
 * namespaces it made itself (`joinable`: a pod's, in the shim); any other path names a host
 * namespace, which a container in a VM cannot be in, so it is refused rather than silently
 * replaced by a fresh one. The network entry is the exception: its path names the namespace
 * whose interfaces the VM takes over (network/), checked when the VM starts. A pinned
 * namespace of a type in `pinned` (a pod's, which CRI-O pins and names in its sandbox's
 * config) is accepted too: the VM's own namespaces of that type stand for it; so are the
 * `podPaths`, which name a pod's namespaces through a member's monitor (podman's, pod-claim.ts).
 */
export async function checkNamespacePaths(
  bundle: Bundle,
  {
    joinable = NO_JOINABLE_NAMESPACES,
    pinned = NO_JOINABLE_NAMESPACES,
    podPaths = NO_JOINABLE_NAMESPACES,
    signal,
  }: {
    joinable?: ReadonlySet<string>;
    pinned?: ReadonlySet<string>;
    podPaths?: ReadonlySet<string>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const configPath = `${bundle.dir}/config.json`;
  for (const [index, ns] of (bundle.spec.linux?.namespaces ?? []).entries()) {
    if (!ns.path || ns.type === 'network') continue;
    const entry = `linux.namespaces[${index}] (${ns.type})`;
    const found = await checkNamespacePath(ns.path, ns.type, signal);
    if (found === 'missing') {
      throw new HullError(
        'ERR_CONFIG',
        `${configPath}: ${entry} names ${ns.path}, which does not exist: fix the path, or drop it to give the container its own ${ns.type} namespace`,
      );
    }
    if (found === 'unreadable') {
      throw new HullError(
        'ERR_CONFIG',
        `${configPath}: ${entry} names ${ns.path}, which hull may not open: give the path of a namespace hull can enter`,
      );
    }
    if (found === 'other-type') {
      throw new HullError(
        'ERR_CONFIG',
        `${configPath}: ${entry} names ${ns.path}, which is not a namespace of type ${ns.type}: give the path of one of that type`,
      );
    }
    if (joinable.has(ns.type) || (pinned.has(ns.type) && podPaths.has(ns.path))) continue;
    if (!pinned.has(ns.type) || !(await isPinnedNamespace(ns.path, ns.type))) {
      throw new HullError(
        'ERR_UNSUPPORTED',
        `${configPath}: ${entry} asks to join ${ns.path}, a namespace of the host kernel, which a container in a VM cannot join: drop the path to give the container its own ${ns.type} namespace`,
      );
    }
  }
}
