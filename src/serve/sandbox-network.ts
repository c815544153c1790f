import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { leaseAddress, readLeases, releaseLeases } from '../network/ip-leases.js';
import { gatewayOf, isIPv4 } from '../network/ipv4-subnet.js';
import { netnsExists } from '../network/netns.js';
import { type BridgeNetwork, ensureBridge } from '../network/serve-bridge.js';
import { ROOTFS_DISK_ANNOTATION } from '../oci/rootfs-annotations.js';
import type { Spec } from '../oci/spec.js';
import { run } from '../sys/exec.js';
import { systemTool } from '../sys/system-tool.js';
import type { SandboxAddress } from './sandbox-address.js';
import { SandboxPorts } from './sandbox-ports.js';
import type { SandboxRecord } from './sandbox-records.js';

/** Resolver files, in the order read: the host's, then systemd-resolved's upstream list. */
const RESOLV_CONF_FILES = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'];
/** The guest's resolver: a file of the sandbox's directory, bound read-only over the image's. */
const RESOLV_CONF = 'resolv.conf';

const log = logger('serve');

const netnsName = (sandboxId: string) => `hull-${sandboxId}`;
/**
 * An interface name has 15 characters at most: `h` and the ID's 64 random bits in base 36
 * (13 digits), so that no two sandboxes' names are the same and a teardown by name removes
 * only its own sandbox's veth.
 */
function hostVethName(sandboxId: string): string {
  const bits = BigInt(`0x${sandboxId.slice(3)}`);
  return `h${bits.toString(36).padStart(13, '0')}`;
}

/**
 * Each network 'internet' sandbox's own network namespace on the host, made by the server
 * before the container: a veth whose host end is an isolated port of serve's bridge and whose
 * other end, eth0 with a leased address and a default route through the bridge, the VM takes
 * over (hull's OCI path mirrors a namespace's veth into the guest). All of it is named after
 * the sandbox, so it is removed by name, whether the create failed half-way, the sandbox was
 * killed, or it ended while no server ran (the restart sweep).
 */
export class SandboxNetworks {
  readonly ports: SandboxPorts;
  private bridgeReady: Promise<void> | undefined;

  constructor(
    private readonly network: BridgeNetwork,
    private readonly root: string,
    portsHost: string,
  ) {
    this.ports = new SandboxPorts(portsHost);
  }

  /** Makes the sandbox's namespace and address; on failure nothing is left of them. */
  async attach(sandboxId: string, sandboxDir: string, signal: AbortSignal): Promise<SandboxAddress> {
    this.bridgeReady ??= ensureBridge(this.network, signal).catch((err: unknown) => {
      this.bridgeReady = undefined;
      throw err;
    });
    await this.bridgeReady;
    const { bridge, subnet } = this.network;
    const address: SandboxAddress = {
      bridge,
      netns: `/run/netns/${netnsName(sandboxId)}`,
      hostVeth: hostVethName(sandboxId),
      address: await leaseAddress(bridge, subnet, { sandboxId, root: this.root }),
      prefixLength: subnet.prefixLength,
      gateway: gatewayOf(subnet),
    };
    try {
      await ip(
        ['netns', 'add', netnsName(sandboxId)],
        `making the network namespace of ${sandboxId}`,
        signal,
      );
      await ip(
        [
          'link',
          'add',
          address.hostVeth,
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'netns',
          netnsName(sandboxId),
        ],
        `making the veth of ${sandboxId}`,
        signal,
      );
      // Before it is up: no IPv6 link-local address on the host's side of the sandbox.
      await writeFile(`/proc/sys/net/ipv6/conf/${address.hostVeth}/disable_ipv6`, '1');
      await ip(
        ['-batch', '-'],
        `joining ${sandboxId}'s veth to ${bridge}, isolated`,
        signal,
        [
          `link set dev ${address.hostVeth} master ${bridge}`,
          // The bridge forwards nothing between two isolated ports: no sandbox reaches another.
          `link set dev ${address.hostVeth} type bridge_slave isolated on`,
          `link set dev ${address.hostVeth} up`,
          '',
        ].join('\n'),
      );
      await ip(
        ['-n', netnsName(sandboxId), '-batch', '-'],
        `giving ${sandboxId} its address`,
        signal,
        [
          `addr add ${address.address}/${address.prefixLength} dev eth0`,
          'link set lo up',
          'link set eth0 up',
          `route add default via ${address.gateway} dev eth0`,
          '',
        ].join('\n'),
      );
      await writeFile(join(sandboxDir, RESOLV_CONF), await guestResolvConf(), { mode: 0o644 });
    } catch (err) {
      await this.detach(sandboxId, bridge);
      throw err;
    }
    return address;
  }

  /**
   * The MAC address of the sandbox's eth0, which its guest's card took (a fork's card keeps
   * its parent's until the fork's own is set up; see snapshot/fork-source.ts).
   */
  async guestMac(sandboxId: string, signal: AbortSignal): Promise<string> {
    const out = await ip(
      ['-j', '-n', netnsName(sandboxId), 'link', 'show', 'dev', 'eth0'],
      `reading the MAC address of ${sandboxId}`,
      signal,
    );
    const mac = (JSON.parse(out) as { address?: string }[])[0]?.address;
    if (!mac) throw new HullError('ERR_NETWORK', `sandbox ${sandboxId} has no eth0 in its namespace`);
    return mac;
  }

  /**
   * Removes the sandbox's namespace (its veth goes with it), then its address lease: a lease
   * is the last thing of a sandbox's network, so the sweep that follows leases finds all.
   */
  async detach(sandboxId: string, bridge = this.network.bridge): Promise<void> {
    this.ports.closeAll(sandboxId);
    const name = netnsName(sandboxId);
    if (await netnsExists(`/run/netns/${name}`)) {
      await ip(['netns', 'del', name], `removing the network namespace of ${sandboxId}`);
    }
    // Gone with the namespace, unless the create stopped between making it and moving its peer.
    await ip(['link', 'del', hostVethName(sandboxId)], 'removing a veth').catch(() => {});
    await releaseLeases(bridge, sandboxId);
  }

  /**
   * After a restart: the ports of live sandboxes listen again; the network of any sandbox of
   * this root that is no longer live (it ended, or its create was cut short, while no server
   * ran) is removed.
   */
  async recover(live: SandboxRecord[]): Promise<void> {
    const liveIds = new Set(live.map((r) => r.sandboxId));
    for (const lease of await readLeases(this.network.bridge)) {
      if (lease.root !== this.root || liveIds.has(lease.sandboxId)) continue;
      log.info(
        { sandbox: lease.sandboxId, address: lease.address },
        'removing the network of a sandbox gone',
      );
      await this.detach(lease.sandboxId).catch((err: unknown) =>
        log.error({ sandbox: lease.sandboxId, err: messageOf(err) }, 'removing a network failed'),
      );
    }
    for (const record of live) {
      if (record.internet) await this.ports.restore(record);
    }
  }

  /** Stops the ports' listeners (the server is closing); the namespaces live on with their sandboxes. */
  close(): void {
    this.ports.close();
  }
}

/**
 * The files a sandbox's writable disk starts with (see makeWritableDisk): its resolver as
 * /etc/resolv.conf of the overlay's upper layer, so a root on disks has it without a bind mount
 * (which only the 9p share carries, and which would make its VM unsavable). Undefined without
 * a network. The caller removes the directory once the disk is made.
 */
export async function diskSeedOf(record: SandboxRecord, sandboxDir: string): Promise<string | undefined> {
  if (!record.internet) return undefined;
  const seed = join(sandboxDir, 'disk-seed');
  await mkdir(join(seed, 'upper', 'etc'), { recursive: true, mode: 0o755 });
  await copyFile(join(sandboxDir, RESOLV_CONF), join(seed, 'upper', 'etc', 'resolv.conf'));
  return seed;
}

/**
 * The container's config: its VM takes the sandbox's namespace (its veth, address and route),
 * and /etc/resolv.conf is the server's (its nameservers, reached through NAT): on a root on
 * disks, in the writable disk from its seed (diskSeedOf); else bound read-only over the image's.
 */
export function withSandboxNetwork(spec: Spec, record: SandboxRecord, sandboxDir: string): Spec {
  if (!record.internet) return spec;
  const namespaces = (spec.linux?.namespaces ?? []).filter((ns) => ns.type !== 'network');
  namespaces.push({ type: 'network', path: record.internet.netns });
  spec.linux = { ...spec.linux, namespaces };
  if (spec.annotations?.[ROOTFS_DISK_ANNOTATION]) return spec;
  spec.mounts = [
    ...(spec.mounts ?? []),
    {
      destination: '/etc/resolv.conf',
      type: 'bind',
      source: join(sandboxDir, RESOLV_CONF),
      options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
    },
  ];
  return spec;
}

/** A refusal for a port of a sandbox made without a network. */
export function noNetwork(sandboxId: string): HullError {
  return new HullError(
    'ERR_NO_NETWORK',
    `sandbox ${sandboxId} was made with network 'none': nothing can reach its ports; create it with network 'internet'`,
  );
}

/**
 * The host's nameservers a sandbox can use: IPv4 (sandboxes have no IPv6) and not loopback
 * (the guest's loopback is its own), from /etc/resolv.conf, else from systemd-resolved's list
 * of upstream servers when the host's file names only its local stub, as Docker does.
 */
export async function guestResolvConf(files = RESOLV_CONF_FILES): Promise<string> {
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const lines = text.split('\n').map((line) => line.trim());
    const servers = lines
      .filter((line) => /^nameserver\s/.test(line))
      .map((line) => line.split(/\s+/)[1] ?? '')
      .filter((address) => isIPv4(address) && !address.startsWith('127.'));
    if (!servers.length) continue;
    const rest = lines.filter((line) => /^(search|options)\s/.test(line));
    return `${[...servers.map((s) => `nameserver ${s}`), ...rest].join('\n')}\n`;
  }
  return '# hull serve: the host has no nameserver a sandbox can reach (only loopback ones)\n';
}

function ip(args: string[], purpose: string, signal?: AbortSignal, input?: string): Promise<string> {
  return run(systemTool('ip'), args, { signal, errorCode: 'ERR_NETWORK', purpose, input });
}
