import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { POD_PINNED_NAMESPACES } from '../oci/pod-namespaces.js';
import { hasRootOnDisks } from '../oci/rootfs-annotations.js';
import type { Spec } from '../oci/spec.js';
import { isPinnedNamespace } from '../sys/namespaces.js';
import { isAlive } from '../sys/process-identity.js';
import type { Bundle } from './bundle.js';
import { containerDir } from './container-id.js';
import { checkNamespacePaths } from './namespace-paths.js';
import type { RuntimeSettings } from './runtime.js';
import { effectiveState, monitorOf, readState } from './state.js';

/** The file in a container's directory naming the pod whose VM it runs in. */
export const POD_FILE = 'pod';

/** The namespace types whose pinned paths name a pod, in the order a pod's key is taken from. */
const POD_KEY_TYPES = ['network', 'ipc', 'uts'] as const;

/** podman's way of naming its pod's namespaces: those of the infra container's process. */
const PROC_NAMESPACE = /^\/proc\/(\d+)\/ns\/[a-z]+$/;

export interface PodPlacement {
  /** The pod's key: the inode of the first pinned namespace its containers name. */
  key: string;
  /** The `/proc/<pid>/ns/*` paths the configuration names that are the pod's (podman's). */
  memberPaths: ReadonlySet<string>;
}

/**
 * The pod a container's config places it in, if any. CRI-O pins each pod's network, IPC and
 * UTS namespaces and names them in all of the pod's containers: the key is the inode of the
 * first pinned one. podman names its infra container's `/proc/<pid>/ns/<type>`: a pid that is
 * the monitor of a live container of the same root names that container's pod.
 */
export async function podOf(settings: RuntimeSettings, spec: Spec): Promise<PodPlacement | undefined> {
  // A container with its root on disks has a VM of its own (only that VM has its disks): a
  // sandbox of `hull serve`, whose pinned network namespace is its own, not a pod's, or a
  // container made savable (dev.hull.rootfs=disk), whose network namespace its VM takes over.
  if (hasRootOnDisks(spec.annotations)) return undefined;
  const namespaces = spec.linux?.namespaces ?? [];
  for (const type of POD_KEY_TYPES) {
    const path = namespaces.find((ns) => ns.type === type)?.path;
    if (path && (await isPinnedNamespace(path, type))) {
      return { key: `${type}:${(await stat(path)).ino}`, memberPaths: new Set() };
    }
  }
  const pids = new Set<number>();
  for (const ns of namespaces) {
    const m = ns.path ? PROC_NAMESPACE.exec(ns.path) : null;
    if (m) pids.add(Number(m[1]));
  }
  for (const pid of pids) {
    const key = await podOfMonitor(settings, pid);
    if (key) {
      const memberPaths = namespaces
        .filter(
          (ns) =>
            ns.path === `/proc/${pid}/ns/${nsFileName(ns.type)}` &&
            (ns.type === 'network' || POD_PINNED_NAMESPACES.has(ns.type)),
        )
        .map((ns) => ns.path!);
      return { key, memberPaths: new Set(memberPaths) };
    }
  }
  return undefined;
}

/**
 * The pod of a lone OCI container's bundle (the OCI command's create and run), after checking
 * its namespace paths: a pod's pinned IPC and UTS namespaces (CRI-O's), or those podman names
 * through its infra container's monitor, are the pod VM's own; any other path is refused.
 */
export async function checkedPodOf(
  settings: RuntimeSettings,
  bundle: Bundle,
): Promise<PodPlacement | undefined> {
  const pod = await podOf(settings, bundle.spec);
  await checkNamespacePaths(bundle, { pinned: POD_PINNED_NAMESPACES, podPaths: pod?.memberPaths });
  return pod;
}

/** Records the pod of the container whose directory is `dir`. */
export async function recordPod(settings: RuntimeSettings, id: string, key: string): Promise<void> {
  await writeFile(join(containerDir(settings, id), POD_FILE), key, { mode: 0o600 });
}

/** The pod of the live container of this root whose monitor is `pid`, if there is one. */
async function podOfMonitor(settings: RuntimeSettings, pid: number): Promise<string | undefined> {
  for (const name of await readdir(settings.root).catch(() => [] as string[])) {
    const dir = join(settings.root, name);
    const state = await readState(dir, name).catch(() => undefined);
    if (!state || state.pid !== pid || !isAlive(monitorOf(state))) continue;
    if (effectiveState(state).status === 'stopped') continue;
    return readFile(join(dir, POD_FILE), 'utf8').catch(() => undefined);
  }
  return undefined;
}

/** The file under /proc/<pid>/ns/ of a namespace type (the network one is `net`). */
function nsFileName(type: string): string {
  return type === 'network' ? 'net' : type;
}
