import { HullError } from '../errors.js';
import { logger } from '../log.js';
import type { GuestNetwork } from './guest-network.js';
import { netnsExists, runInNetns } from './netns.js';

/** Every frame, whatever its protocol: u32 matching zero bits at offset 0. */
const MATCH_ALL = 'protocol all u32 match u8 0 0';

/**
 * Joins each interface to its tap (which the VMM holds open) in both directions with tc
 * ingress filters that redirect every frame: what arrives on the client's interface leaves
 * through the tap into the guest, and what the guest sends leaves through the interface.
 * The namespace's own IP stack no longer sees the interface's traffic; the guest, which has
 * the same MAC and addresses, answers instead.
 */
export async function connectTaps(network: GuestNetwork, signal?: AbortSignal): Promise<void> {
  if (!network.interfaces.length) return;
  await refuseTakenIngress(network, signal);
  await runInNetns(network.netns, 'ip', ['-batch', '-'], {
    input: network.interfaces.map((i) => `link set dev ${i.tap} mtu ${i.mtu} up\n`).join(''),
    signal,
    purpose: `bringing up the VM's taps in ${network.netns}`,
  });
  const script = network.interfaces.flatMap((i) => [
    `qdisc add dev ${i.name} ingress`,
    `filter add dev ${i.name} parent ffff: ${MATCH_ALL} action mirred egress redirect dev ${i.tap}`,
    `qdisc add dev ${i.tap} ingress`,
    `filter add dev ${i.tap} parent ffff: ${MATCH_ALL} action mirred egress redirect dev ${i.name}`,
  ]);
  await runInNetns(network.netns, 'tc', ['-batch', '-'], {
    input: `${script.join('\n')}\n`,
    signal,
    purpose: `redirecting the traffic of ${network.interfaces.map((i) => i.name).join(', ')} to the VM`,
  });
}

/**
 * An interface's ingress qdisc is hull's to add and remove: one that is already there belongs
 * to someone else (a bandwidth plugin, a BPF program) and would be lost at teardown.
 */
async function refuseTakenIngress(network: GuestNetwork, signal?: AbortSignal): Promise<void> {
  const out = await runInNetns(network.netns, 'tc', ['-json', 'qdisc', 'show'], {
    signal,
    purpose: `reading the qdiscs of ${network.netns}`,
  });
  const qdiscs = JSON.parse(out || '[]') as { kind: string; dev: string }[];
  const names = new Set(network.interfaces.map((i) => i.name));
  const taken = qdiscs.find((q) => (q.kind === 'ingress' || q.kind === 'clsact') && names.has(q.dev));
  if (taken) {
    throw new HullError(
      'ERR_NETWORK',
      `interface ${taken.dev} in ${network.netns} already has a ${taken.kind} qdisc: hull redirects its traffic to the VM with its own; remove the other (a bandwidth or BPF plugin) from the network configuration`,
    );
  }
}

/**
 * Removes what hull added to the client's interfaces (their ingress qdisc and its filters), so
 * the client's own teardown finds them as it made them. The taps go with the VMM. A namespace
 * or an interface already gone (the client tore it down first) is nothing to undo.
 */
export async function disconnectTaps(network: GuestNetwork): Promise<void> {
  if (!network.interfaces.length || !(await netnsExists(network.netns))) return;
  for (const i of network.interfaces) {
    await runInNetns(network.netns, 'tc', ['qdisc', 'del', 'dev', i.name, 'ingress'], {
      signal: AbortSignal.timeout(10_000),
      purpose: `removing hull's filter from ${i.name}`,
    }).catch((err: unknown) => logger('network').debug({ err: String(err) }, 'nothing to undo'));
  }
}
