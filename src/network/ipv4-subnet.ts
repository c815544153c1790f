import { HullError } from '../errors.js';

/** An IPv4 subnet as numbers: the arithmetic of leases and overlap checks. */
export interface Ipv4Subnet {
  /** The network address (host bits zero). */
  base: number;
  prefixLength: number;
}

/**
 * A dotted-quad IPv4 address, as node:net's isIPv4 accepts it (four decimal octets, 0-255,
 * no leading zeros). Here rather than from node:net because the settings check addresses, and
 * every hull command reads the settings: loading node:net (and the streams it loads) cost
 * 2.1 ms of each command's start, measured against `node -e 0`.
 */
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function isIPv4(address: string): boolean {
  return DOTTED_QUAD.test(address);
}

export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function numberToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** `10.208.0.0/16`; host bits given are cleared (`10.208.3.4/16` is the same subnet). */
export function parseIpv4Subnet(cidr: string): Ipv4Subnet {
  const [address, prefix] = cidr.split('/');
  const prefixLength = Number(prefix);
  if (
    !address ||
    !isIPv4(address) ||
    !Number.isInteger(prefixLength) ||
    prefixLength < 0 ||
    prefixLength > 32
  ) {
    throw new HullError('ERR_CONFIG', `${cidr} is not an IPv4 subnet: write ADDRESS/PREFIX (10.208.0.0/16)`);
  }
  const size = 2 ** (32 - prefixLength);
  return { base: Math.floor(ipv4ToNumber(address) / size) * size, prefixLength };
}

export function subnetSize(subnet: Ipv4Subnet): number {
  return 2 ** (32 - subnet.prefixLength);
}

/** The gateway: the subnet's first address, held by the bridge on the host. */
export function gatewayOf(subnet: Ipv4Subnet): string {
  return numberToIpv4(subnet.base + 1);
}

/** The addresses sandboxes may lease: all but the network, the gateway and the broadcast. */
export function leasableAddresses(subnet: Ipv4Subnet): { first: number; count: number } {
  return { first: subnet.base + 2, count: Math.max(0, subnetSize(subnet) - 3) };
}

export function formatSubnet(subnet: Ipv4Subnet): string {
  return `${numberToIpv4(subnet.base)}/${subnet.prefixLength}`;
}

export function overlaps(a: Ipv4Subnet, b: Ipv4Subnet): boolean {
  return a.base < b.base + subnetSize(b) && b.base < a.base + subnetSize(a);
}
