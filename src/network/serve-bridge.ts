import { readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HullError } from '../errors.js';
import { logger } from '../log.js';
import { run } from '../sys/exec.js';
import { systemTool } from '../sys/system-tool.js';
import { leaseDir } from './ip-leases.js';
import { formatSubnet, gatewayOf, type Ipv4Subnet, overlaps, parseIpv4Subnet } from './ipv4-subnet.js';

/**
 * The host side of `hull serve`'s network 'internet': one bridge of serve's own (never
 * another tool's, such as podman's cni-podman0 or docker0) holding the gateway address of its
 * subnet, NAT for what sandboxes send out, and the firewall that keeps them from everything
 * else on the host:
 *  - no sandbox reaches another: every sandbox's port on the bridge is isolated (the bridge
 *    forwards nothing between two isolated ports), and the host routes nothing from the bridge
 *    back into it;
 *  - no sandbox reaches the host's own services, on any of its addresses (the gateway's too,
 *    the API's TCP listener included): what arrives from the bridge for the host is dropped,
 *    but answers to connections the host made (a port's proxy) and ICMP errors about them;
 *  - nothing outside starts a connection to a sandbox; link-local destinations (a cloud's
 *    metadata service at 169.254.169.254) are not forwarded; IPv6 is off on the bridge.
 */
export interface BridgeNetwork {
  bridge: string;
  subnet: Ipv4Subnet;
}

export function bridgeNetwork(bridge: string, subnet: string): BridgeNetwork {
  return { bridge, subnet: parseIpv4Subnet(subnet) };
}

const log = logger('serve');

/** Chain names of one bridge's rules (iptables allows 28 characters; a bridge name has 15). */
export function firewallChains(bridge: string) {
  return { input: `HULL-IN-${bridge}`, forward: `HULL-FWD-${bridge}`, nat: `HULL-NAT-${bridge}` };
}

interface IpRoute {
  dst: string;
  dev?: string;
}

interface IpLink {
  ifname: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/**
 * Makes the bridge, its address and its firewall, or checks the ones there; safe to run again
 * (each server start, several servers sharing one bridge). A subnet the host already routes
 * elsewhere is refused rather than shadowed.
 */
export async function ensureBridge(network: BridgeNetwork, signal?: AbortSignal): Promise<void> {
  const { bridge, subnet } = network;
  const gateway = gatewayOf(subnet);
  const links = JSON.parse(
    (await ip(['-json', '-details', 'addr', 'show'], 'reading the host interfaces', signal)) || '[]',
  ) as IpLink[];
  const existing = links.find((link) => link.ifname === bridge);
  if (existing) {
    const addresses = (existing.addr_info ?? []).filter((a) => a.family === 'inet');
    const ours = addresses.some((a) => a.local === gateway && a.prefixlen === subnet.prefixLength);
    if (existing.linkinfo?.info_kind !== 'bridge' || !ours) {
      throw new HullError(
        'ERR_CONFIG',
        `interface ${bridge} exists but is not serve's bridge for ${formatSubnet(subnet)} (a bridge with ${gateway}/${subnet.prefixLength}): name another with serve.bridge (HULL_SERVE_BRIDGE), or remove it`,
      );
    }
  } else {
    await refuseRoutedSubnet(network, signal);
    await ip(['link', 'add', bridge, 'type', 'bridge'], `making the bridge ${bridge}`, signal);
    try {
      // Before it is up: a link-local IPv6 address would let sandboxes reach the host.
      await writeFile(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, '1');
      await ip(
        ['addr', 'add', `${gateway}/${subnet.prefixLength}`, 'dev', bridge],
        `giving ${bridge} its address`,
        signal,
      );
      await ip(['link', 'set', bridge, 'up'], `bringing ${bridge} up`, signal);
    } catch (err) {
      await ip(['link', 'del', bridge], `removing ${bridge}`).catch(() => {});
      throw err;
    }
    log.info({ bridge, subnet: formatSubnet(subnet) }, 'made the sandboxes bridge');
  }
  await enableForwarding();
  await installFirewall(network, signal);
}

/** Removes the bridge, its firewall and its leases (tests, and an operator's clean-up). */
export async function removeBridge(network: BridgeNetwork, signal?: AbortSignal): Promise<void> {
  const chains = firewallChains(network.bridge);
  for (const [tool, table, parent, chain] of jumpPoints(chains)) {
    for (const rule of jumpRules(parent, chain, network.bridge)) {
      while (
        await iptables(tool, ['-t', table, '-D', ...rule], signal).then(
          () => true,
          () => false,
        )
      ) {}
    }
    await iptables(tool, ['-t', table, '-F', chain], signal).catch(() => {});
    await iptables(tool, ['-t', table, '-X', chain], signal).catch(() => {});
  }
  await ip(['link', 'del', network.bridge], `removing ${network.bridge}`, signal).catch(() => {});
  await rm(leaseDir(network.bridge), { recursive: true, force: true });
  // The directory of every bridge's leases goes with the last of them (rmdir: only if empty).
  await rmdir(dirname(leaseDir(network.bridge))).catch(() => {});
}

async function refuseRoutedSubnet(network: BridgeNetwork, signal?: AbortSignal): Promise<void> {
  const routes = JSON.parse(
    (await ip(['-json', '-4', 'route', 'show'], 'reading the host routes', signal)) || '[]',
  ) as IpRoute[];
  for (const route of routes) {
    if (route.dst === 'default' || route.dev === network.bridge) continue;
    const dst = route.dst.includes('/') ? route.dst : `${route.dst}/32`;
    if (overlaps(parseIpv4Subnet(dst), network.subnet)) {
      throw new HullError(
        'ERR_CONFIG',
        `serve's subnet ${formatSubnet(network.subnet)} overlaps ${route.dst}, which the host routes to ${route.dev ?? 'elsewhere'}: choose another with serve.subnet (HULL_SERVE_SUBNET)`,
      );
    }
  }
}

async function enableForwarding(): Promise<void> {
  const path = '/proc/sys/net/ipv4/ip_forward';
  if ((await readFile(path, 'utf8')).trim() === '1') return;
  await writeFile(path, '1');
  log.info({}, 'turned on IPv4 forwarding for the sandboxes bridge');
}

/** Each of a bridge's chains with the tool, table and built-in chain it is jumped to from. */
function jumpPoints(chains: ReturnType<typeof firewallChains>) {
  return [
    ['iptables', 'filter', 'INPUT', chains.input],
    ['iptables', 'filter', 'FORWARD', chains.forward],
    ['iptables', 'nat', 'POSTROUTING', chains.nat],
    ['ip6tables', 'filter', 'INPUT', chains.input],
    ['ip6tables', 'filter', 'FORWARD', chains.input],
  ] as const;
}

/** Where a bridge's chains are jumped to from (the bridge is named, so the jumps never depend on the subnet). */
function jumpRules(parent: string, chain: string, bridge: string): string[][] {
  if (parent === 'POSTROUTING') return [[parent, '-j', chain]];
  if (parent === 'FORWARD')
    return [
      [parent, '-i', bridge, '-j', chain],
      [parent, '-o', bridge, '-j', chain],
    ];
  return [[parent, '-i', bridge, '-j', chain]];
}

/**
 * The rules, written as a whole by iptables-restore (a chain declared is emptied first, so a
 * restart or a changed subnet leaves no stale rule), then jumped to from the top of the
 * built-in chains, ahead of any other tool's rules.
 */
async function installFirewall(network: BridgeNetwork, signal?: AbortSignal): Promise<void> {
  const { bridge } = network;
  const subnet = formatSubnet(network.subnet);
  const chains = firewallChains(bridge);
  const v4 = [
    '*filter',
    `:${chains.input} - [0:0]`,
    `:${chains.forward} - [0:0]`,
    `-A ${chains.input} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    `-A ${chains.input} -j DROP`,
    `-A ${chains.forward} -i ${bridge} -o ${bridge} -j DROP`,
    `-A ${chains.forward} -o ${bridge} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    `-A ${chains.forward} -o ${bridge} -j DROP`,
    `-A ${chains.forward} -i ${bridge} -d 169.254.0.0/16 -j DROP`,
    `-A ${chains.forward} -i ${bridge} ! -s ${subnet} -j DROP`,
    `-A ${chains.forward} -i ${bridge} -j ACCEPT`,
    'COMMIT',
    '*nat',
    `:${chains.nat} - [0:0]`,
    `-A ${chains.nat} ! -s ${subnet} -j RETURN`,
    `-A ${chains.nat} -d ${subnet} -j RETURN`,
    `-A ${chains.nat} -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n');
  const v6 = ['*filter', `:${chains.input} - [0:0]`, `-A ${chains.input} -j DROP`, 'COMMIT', ''].join('\n');
  await run(systemTool('iptables-restore'), ['-w', '--noflush'], {
    input: v4,
    signal,
    errorCode: 'ERR_NETWORK',
    purpose: `writing the firewall of ${bridge}`,
  });
  await run(systemTool('ip6tables-restore'), ['-w', '--noflush'], {
    input: v6,
    signal,
    errorCode: 'ERR_NETWORK',
    purpose: `writing the IPv6 firewall of ${bridge}`,
  });
  for (const [tool, table, parent, chain] of jumpPoints(chains)) {
    for (const rule of jumpRules(parent, chain, bridge)) {
      const present = await iptables(tool, ['-t', table, '-C', ...rule], signal).then(
        () => true,
        () => false,
      );
      if (!present) await iptables(tool, ['-t', table, '-I', rule[0]!, '1', ...rule.slice(1)], signal);
    }
  }
}

function iptables(tool: 'iptables' | 'ip6tables', args: string[], signal?: AbortSignal): Promise<string> {
  return run(systemTool(tool), ['-w', ...args], {
    signal,
    errorCode: 'ERR_NETWORK',
    purpose: `${tool} ${args.join(' ')}`,
  });
}

function ip(args: string[], purpose: string, signal?: AbortSignal): Promise<string> {
  return run(systemTool('ip'), args, { signal, errorCode: 'ERR_NETWORK', purpose });
}
