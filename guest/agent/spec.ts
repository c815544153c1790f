import { POD_SHARED_NAMESPACES } from '../../src/oci/pod-namespaces.js';
import type { Spec } from '../../src/oci/spec.js';

export interface GuestPlacement {
  containerId: string;
  /** The container's root filesystem inside the guest. */
  rootfs: string;
  /** Guest paths of bind-mount sources the host shared, by index in `mounts`. */
  sharedMounts: Map<number, string>;
  /** In a pod: the guest pid of the sandbox container, whose namespaces this one joins. */
  sandboxPid?: number;
}

/**
 * Turns a bundle's config.json, written for the host, into the configuration crun runs in the
 * guest. Paths move to where the host's files appear over the share; what only means something
 * on the host is removed:
 *  - createRuntime, prestart, poststart and poststop hooks run on the host, by hull's host
 *    side; createContainer and startContainer hooks run in the container's namespaces, which
 *    are in the guest, so crun runs them there;
 *  - namespace paths name host namespaces; the container's network namespace, with or without
 *    a path, is the one hull gave the VM (its interfaces, addresses and routes are the guest's,
 *    see network.ts), so the container joins the guest's own; in a pod, IPC, UTS and PID
 *    namespaces named by path are the sandbox container's, so the container joins those of
 *    the sandbox container in the guest; any other becomes a fresh one;
 *  - AppArmor/SELinux labels and Intel RDT name host policy the guest kernel does not have;
 *  - a container sharing the VM's UTS namespace (a host-network pod) gets no hostname of its
 *    own: the VM's is set from the same configuration;
 *  - the cgroup path is the guest's own, under /hull, whatever the host's cgroup manager.
 */
export function toGuestSpec(host: Spec, placement: GuestPlacement): Spec {
  // A copy through JSON, not structuredClone: the spec came as JSON and goes to crun as JSON,
  // and V8's serializer would be code a VM cloned from a template runs (and, under software
  // emulation, translates) for this alone: the create's configuration step took 13 ms, not 22.
  const spec = JSON.parse(JSON.stringify(host)) as Spec;
  spec.root = { ...spec.root, path: placement.rootfs };
  spec.mounts = (spec.mounts ?? []).map((mount, index) => {
    const source = placement.sharedMounts.get(index);
    return source === undefined ? mount : { ...mount, source };
  });
  const hooks = spec.hooks;
  delete spec.hooks;
  if (hooks?.createContainer || hooks?.startContainer) {
    spec.hooks = { createContainer: hooks.createContainer, startContainer: hooks.startContainer };
  }
  delete spec.vm;
  if (spec.process) {
    delete spec.process.apparmorProfile;
    delete spec.process.selinuxLabel;
  }
  if (spec.linux) {
    const linux = spec.linux;
    linux.namespaces = (linux.namespaces ?? [])
      .filter((ns) => ns.type !== 'network')
      .map((ns) => {
        if (ns.path && POD_SHARED_NAMESPACES.has(ns.type) && placement.sandboxPid)
          return { type: ns.type, path: `/proc/${placement.sandboxPid}/ns/${ns.type}` };
        return { type: ns.type };
      });
    // The network namespace is the guest's own, which crun will not set net.* sysctls in:
    // the agent sets them there (see networkSysctls).
    if (linux.sysctl) {
      linux.sysctl = Object.fromEntries(
        Object.entries(linux.sysctl).filter(([key]) => !isNetworkSysctl(key)),
      );
    }
    // Without a UTS namespace of its own the container shares the VM's, whose hostname the
    // host set when the sandbox was created; crun refuses a hostname it cannot apply.
    if (!linux.namespaces.some((ns) => ns.type === 'uts')) delete spec.hostname;
    linux.cgroupsPath = `/hull/${placement.containerId}`;
    delete linux.mountLabel;
    delete linux.intelRdt;
    if (linux.resources) delete linux.resources.network;
  }
  return spec;
}

function isNetworkSysctl(key: string): boolean {
  return key.startsWith('net.');
}

/**
 * The container's net.* sysctls. Its network namespace is the guest's (toGuestSpec), so they
 * are the VM's network settings, which the agent applies before crun runs (as for Docker's
 * net.ipv4.ip_unprivileged_port_start=0 on every bridge container).
 */
export function networkSysctls(host: Spec): [string, string][] {
  return Object.entries(host.linux?.sysctl ?? {}).filter(([key]) => isNetworkSysctl(key));
}
