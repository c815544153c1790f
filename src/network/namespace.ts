import type { Spec } from '../oci/spec.js';
import { systemTool } from '../sys/system-tool.js';

/**
 * Where a container's network comes from, as its config.json says:
 *  - `path`: a namespace the client prepared (podman, CNI) by path;
 *  - `new`: a network namespace the runtime makes, which a hook may fill (Docker's
 *    libnetwork-setkey, given the state's pid): hull's monitor runs in one of its own;
 *  - `none`: no network entry, which the configuration checks accept only as the VM's own.
 */
export type NetworkSource = { kind: 'path'; path: string } | { kind: 'new' } | { kind: 'none' };

export function networkSource(spec: Spec): NetworkSource {
  const entry = spec.linux?.namespaces?.find((ns) => ns.type === 'network');
  if (!entry) return { kind: 'none' };
  return entry.path ? { kind: 'path', path: entry.path } : { kind: 'new' };
}

/** The program that starts a monitor in a new network namespace of its own (it execs the monitor). */
export const NEW_NETNS_WRAPPER = [systemTool('unshare'), '--net', '--'];

/**
 * The network namespace a container's monitor gives its VM: the one named by path, or, for a
 * namespace the runtime makes, the monitor's own (it was started under NEW_NETNS_WRAPPER), by
 * a path other processes can enter.
 */
export function monitorNetns(spec: Spec): string | undefined {
  const source = networkSource(spec);
  if (source.kind === 'path') return source.path;
  return source.kind === 'new' ? `/proc/${process.pid}/ns/net` : undefined;
}

/** The path of the network namespace config.json names, if it names one. */
export function configuredNetns(spec: Spec): string | undefined {
  const source = networkSource(spec);
  return source.kind === 'path' ? source.path : undefined;
}
