/** What a network 'internet' sandbox holds of the host's network, kept in its record. */
export interface SandboxAddress {
  bridge: string;
  /** `/run/netns/hull-<id>`: the namespace the container's VM takes eth0 from. */
  netns: string;
  /** The host end of the sandbox's veth, a port of the bridge. */
  hostVeth: string;
  address: string;
  prefixLength: number;
  gateway: string;
}
