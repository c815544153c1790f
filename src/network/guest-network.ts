/**
 * The network a sandbox's guest gets: the interfaces, routes and static neighbours a client
 * (podman, Docker, CNI) set up in the container's network namespace on the host, which the
 * guest takes over as they are (same names, MAC and IP addresses), Kata's "tcfilter" model.
 */
export interface GuestInterface {
  /** The interface's name in the namespace (and in the guest): `eth0`. */
  name: string;
  mac: string;
  mtu: number;
  addresses: GuestAddress[];
  /** The tap device hull makes beside it, to which its traffic is redirected. */
  tap: string;
}

export interface GuestAddress {
  family: 'inet' | 'inet6';
  address: string;
  prefixLength: number;
}

export interface GuestRoute {
  family: 'inet' | 'inet6';
  /** `default` or a CIDR. */
  destination: string;
  gateway?: string;
  device: string;
  source?: string;
  scope?: string;
  metric?: number;
  onlink?: boolean;
}

export interface GuestNeighbor {
  address: string;
  mac: string;
  device: string;
}

export interface GuestNetwork {
  /** The host network namespace path the interfaces are in. */
  netns: string;
  interfaces: GuestInterface[];
  routes: GuestRoute[];
  neighbors: GuestNeighbor[];
}
