import { readdirSync, readFileSync } from 'node:fs';
import type { SetupNetworkRequest } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { AgentError } from './errors.js';
import { loadModules } from './kernel-modules.js';
import { runTool } from './tool.js';

const IP = '/usr/sbin/ip';
/** How long the guest kernel may take to show a network card after its driver is loaded. */
const CARD_TIMEOUT_MS = 10_000;

/**
 * Gives the guest the network the host's namespace had: each virtio-net card (found by its
 * MAC address) gets the interface's name, MTU and addresses, then the routes and permanent
 * neighbours are added. Containers share the guest's network namespace, so they see it as
 * they would have seen the host namespace under runc.
 */
export async function setupNetwork(req: SetupNetworkRequest): Promise<void> {
  if (!req.interfaces.length) return;
  // Built into some kernels: the cards showing up below is what counts.
  await loadModules(['virtio_net']);
  const cards = await cardsByMac(req.interfaces.map(cardMac), Date.now() + CARD_TIMEOUT_MS);
  await runTool(IP, ['-batch', '-'], { input: networkScript(req, cards) });
}

/**
 * The `ip -batch` script. Cards are first taken down (a fork's are up, with its parent's
 * addresses, which are flushed) and renamed out of the way, since a card's kernel name
 * (eth1) may be another interface's wanted name, and given their interface's MAC address when
 * they have another (a clone's cards are its template's); routes through a gateway come after
 * the routes that make the gateway reachable.
 */
export function networkScript(req: SetupNetworkRequest, cards: Map<string, string>): string {
  const lines: string[] = [];
  const temporary = (index: number) => `hullnic${index}`;
  req.interfaces.forEach((nic, index) => {
    const card = word(cards.get(cardMac(nic)) ?? '');
    // A fork's cards are up, addressed and routed as its parent's were: an up card keeps its name.
    lines.push(`link set dev ${card} down`);
    lines.push(`link set dev ${card} name ${temporary(index)}`);
    if (cardMac(nic) !== nic.mac.toLowerCase()) {
      lines.push(`link set dev ${temporary(index)} address ${word(nic.mac)}`);
    }
  });
  req.interfaces.forEach((nic, index) => {
    const name = word(nic.name);
    lines.push(`link set dev ${temporary(index)} name ${name}`);
    if (nic.mtu) lines.push(`link set dev ${name} mtu ${nic.mtu}`);
    lines.push(`addr flush dev ${name}`);
    for (const a of nic.addresses) {
      lines.push(
        `addr add ${word(a.address)}/${a.prefixLength} dev ${name}${a.family === 'inet6' ? ' nodad' : ''}`,
      );
    }
    lines.push(`link set dev ${name} up`);
  });
  const routes = [...req.routes].sort((a, b) => Number(Boolean(a.gateway)) - Number(Boolean(b.gateway)));
  for (const r of routes) {
    const destination =
      r.destination === 'default' ? (r.family === 'inet6' ? '::/0' : '0.0.0.0/0') : word(r.destination);
    const parts = [`route replace ${destination}`];
    if (r.gateway) parts.push(`via ${word(r.gateway)}`);
    parts.push(`dev ${word(r.device)}`);
    if (r.source) parts.push(`src ${word(r.source)}`);
    if (r.scope) parts.push(`scope ${word(r.scope)}`);
    if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
    if (r.onlink) parts.push('onlink');
    lines.push(parts.join(' '));
  }
  for (const n of req.neighbors) {
    lines.push(`neigh replace ${word(n.address)} lladdr ${word(n.mac)} dev ${word(n.device)} nud permanent`);
  }
  return `${lines.join('\n')}\n`;
}

/** The MAC address the interface's card has now. */
function cardMac(nic: SetupNetworkRequest['interfaces'][number]): string {
  return (nic.cardMac || nic.mac).toLowerCase();
}

/** One word of the script: nothing that would end it or start another. */
function word(value: string): string {
  if (!/^[\w.:/@%+-]+$/.test(value)) {
    throw new AgentError('invalid', `the network setup has an unusable value ${JSON.stringify(value)}`);
  }
  return value;
}

/** The guest's card names by MAC address, once every wanted MAC has a card (or the deadline passed). */
async function cardsByMac(macs: string[], deadline: number): Promise<Map<string, string>> {
  for (;;) {
    const cards = new Map<string, string>();
    for (const name of readdirSync('/sys/class/net')) {
      const mac = readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim().toLowerCase();
      cards.set(mac, name);
    }
    const missing = macs.filter((mac) => !cards.has(mac));
    if (!missing.length) return cards;
    if (Date.now() > deadline) {
      throw new AgentError(
        'runtime-failed',
        `no network card with MAC address ${missing.join(', ')} in the guest`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
