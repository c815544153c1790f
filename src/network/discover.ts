import { isIP } from 'node:net';
import { HullError } from '../errors.js';
import type { GuestAddress, GuestInterface, GuestNetwork, GuestRoute } from './guest-network.js';
import { runInNetns } from './netns.js';

/**
 * The VM has a fixed number of virtio-mmio slots (microvm has eight; disks, the share and the
 * agent's port take four), and no hotplug: a namespace may bring at most this many interfaces.
 */
export const MAX_INTERFACES = 4;

/** The name of the tap device beside the namespace's interface number `index`. */
export function tapName(index: number): string {
  return `tap${index}_hull`;
}

/**
 * Interface kinds whose frames can be redirected to a tap and back as they are: ethernet
 * links, virtual or not. A bridge, a bond or a layer-3 device (tun, wireguard, ipip) would
 * lose its own function, or has no frames to give.
 */
const REDIRECTABLE_KINDS = new Set(['veth', 'macvlan', 'macvtap', 'ipvlan', 'vlan', undefined]);

interface IpLink {
  ifname: string;
  address?: string;
  mtu: number;
  link_type: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  flags?: string[];
  /** Only IPv6 routes have a preference. */
  pref?: string;
}

interface IpNeighbor {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * Reads what the client set up in a network namespace: its interfaces (all but `lo`), their
 * addresses, the routes of the main table that the kernel did not make itself, and the
 * permanent neighbour entries. An interface whose traffic cannot be redirected is refused.
 */
export async function discoverNetwork(netns: string, signal?: AbortSignal): Promise<GuestNetwork> {
  const out = await runInNetns(netns, 'ip', ['-json', '-details', '-batch', '-'], {
    input: 'addr show\nroute show table all\nneigh show\n',
    signal,
    purpose: `reading the interfaces of network namespace ${netns}`,
  });
  const [links, routes, neighbors] = out
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as unknown[]) as [IpLink[], IpRoute[], IpNeighbor[]];
  return parseNetwork(netns, links ?? [], routes ?? [], neighbors ?? []);
}

export function parseNetwork(
  netns: string,
  links: IpLink[],
  routes: IpRoute[],
  neighbors: IpNeighbor[],
): GuestNetwork {
  const taken = links.filter((link) => /^tap\d+_hull$/.test(link.ifname));
  if (taken.length) {
    throw new HullError(
      'ERR_NETWORK',
      `network namespace ${netns} is already given to another hull VM (it has ${taken[0]!.ifname}): a VM's network cannot be shared with another container; give each container its own network namespace`,
    );
  }
  const chosen = links.filter((link) => link.link_type !== 'loopback');
  for (const link of chosen) {
    const kind = link.linkinfo?.info_kind;
    if (link.link_type !== 'ether' || !REDIRECTABLE_KINDS.has(kind) || !MAC.test(link.address ?? '')) {
      throw new HullError(
        'ERR_NETWORK',
        `interface ${link.ifname} (${kind ?? link.link_type}) in network namespace ${netns} cannot be given to a VM: hull redirects ethernet interfaces (veth, macvlan, ipvlan, vlan); remove it or use a veth`,
      );
    }
  }
  if (chosen.length > MAX_INTERFACES) {
    throw new HullError(
      'ERR_NETWORK',
      `network namespace ${netns} has ${chosen.length} interfaces; a hull VM takes at most ${MAX_INTERFACES}`,
    );
  }
  const interfaces: GuestInterface[] = chosen.map((link, index) => ({
    name: link.ifname,
    mac: link.address!,
    mtu: link.mtu,
    tap: tapName(index),
    addresses: (link.addr_info ?? [])
      .filter((a) => (a.family === 'inet' || a.family === 'inet6') && a.scope !== 'link' && isIP(a.local))
      .map(
        (a): GuestAddress => ({
          family: a.family as 'inet' | 'inet6',
          address: a.local,
          prefixLength: a.prefixlen,
        }),
      ),
  }));
  const names = new Set(interfaces.map((i) => i.name));
  return {
    netns,
    interfaces,
    routes: routes.filter((r) => isGuestRoute(r, names)).map(toGuestRoute),
    neighbors: neighbors
      .filter(
        (n) => names.has(n.dev) && n.state?.includes('PERMANENT') && MAC.test(n.lladdr ?? '') && isIP(n.dst),
      )
      .map((n) => ({ address: n.dst, mac: n.lladdr!, device: n.dev })),
  };
}

/**
 * Routes the guest must be told: those of the main table on the chosen interfaces, without the
 * ones its kernel makes itself (for each address's subnet, and IPv6 link-local and multicast).
 */
function isGuestRoute(route: IpRoute, devices: Set<string>): boolean {
  if (!route.dev || !devices.has(route.dev)) return false;
  if (route.table !== undefined && route.table !== 'main') return false;
  if ((route.type ?? 'unicast') !== 'unicast' || route.protocol === 'kernel') return false;
  return !route.dst.startsWith('fe80:') && !route.dst.startsWith('ff00:');
}

function toGuestRoute(route: IpRoute): GuestRoute {
  const family =
    route.pref !== undefined || route.dst.includes(':') || route.gateway?.includes(':') ? 'inet6' : 'inet';
  return {
    family,
    destination: route.dst,
    device: route.dev!,
    ...(route.gateway ? { gateway: route.gateway } : {}),
    ...(route.prefsrc ? { source: route.prefsrc } : {}),
    ...(route.scope && route.scope !== 'global' && route.scope !== 'universe' ? { scope: route.scope } : {}),
    ...(route.metric !== undefined ? { metric: route.metric } : {}),
    ...(route.flags?.includes('onlink') ? { onlink: true } : {}),
  };
}
