import { randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { type Ipv4Subnet, leasableAddresses, numberToIpv4 } from './ipv4-subnet.js';

/**
 * Addresses of a bridge's subnet leased to sandboxes, as CNI's host-local IPAM keeps them: one
 * file per address, made exclusively (so two creates never get the same one, whichever
 * servers make them), naming the sandbox and the runtime root it belongs to. Kept per bridge,
 * not per root, because servers of several roots may share a bridge.
 */
export interface Lease {
  address: string;
  sandboxId: string;
  root: string;
}

/** Under /run: leases go with the machine's network, at reboot. */
export function leaseDir(bridge: string): string {
  return join('/run/hull-serve-network', bridge);
}

export async function leaseAddress(
  bridge: string,
  subnet: Ipv4Subnet,
  owner: { sandboxId: string; root: string },
): Promise<string> {
  const dir = leaseDir(bridge);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { first, count } = leasableAddresses(subnet);
  // From a random place: an address freed a moment ago is seldom the next one given.
  const start = count > 0 ? randomInt(count) : 0;
  for (let i = 0; i < count; i++) {
    const address = numberToIpv4(first + ((start + i) % count));
    try {
      await writeFile(join(dir, address), JSON.stringify(owner), { flag: 'wx', mode: 0o600 });
      return address;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new HullError(
    'ERR_NETWORK',
    `every address of serve's subnet on ${bridge} is leased: kill sandboxes, or give serve.subnet a larger subnet`,
  );
}

export async function readLeases(bridge: string): Promise<Lease[]> {
  const dir = leaseDir(bridge);
  const leases: Lease[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    try {
      const owner = JSON.parse(await readFile(join(dir, name), 'utf8')) as Omit<Lease, 'address'>;
      if (typeof owner.sandboxId === 'string' && typeof owner.root === 'string')
        leases.push({ address: name, sandboxId: owner.sandboxId, root: owner.root });
    } catch {
      // Half-written by a server killed mid-lease: nobody's, and taken again only once removed.
      leases.push({ address: name, sandboxId: '', root: '' });
    }
  }
  return leases;
}

/** Releases every address leased to the sandbox (none is fine: already released). */
export async function releaseLeases(bridge: string, sandboxId: string): Promise<void> {
  for (const lease of await readLeases(bridge)) {
    if (lease.sandboxId === sandboxId) await unlink(join(leaseDir(bridge), lease.address)).catch(() => {});
  }
}
