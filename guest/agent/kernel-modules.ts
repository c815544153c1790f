import { guestLogger } from './log.js';
import { runTool } from './tool.js';

const log = guestLogger('modules');

/**
 * Modules the kernel cannot load by itself when a container first needs them. Everything else
 * a container uses (bridge, veth, nf_tables, iptable_nat, overlay, tun) the kernel asks the
 * guest's modprobe for on first use; iptables-legacy instead needs ip_tables' socket options
 * to exist before it asks for a table, and on a host a firewall has long loaded them.
 */
const FOR_NET_ADMIN = ['ip_tables', 'ip6_tables'];

let loading: Promise<void> | undefined;

/** Loads FOR_NET_ADMIN once per guest, before the first container that may use iptables. */
export function prepareForNetAdmin(): Promise<void> {
  // A kernel with these built in, or without them: iptables then says what it lacks.
  loading ??= loadModules(FOR_NET_ADMIN);
  return loading;
}

/**
 * Loads modules with the guest's modprobe. One that cannot be loaded (built in, or missing) is
 * logged, not thrown: what needed it says what it lacks.
 */
export async function loadModules(names: string[]): Promise<void> {
  await runTool('/sbin/modprobe', ['-a', ...names]).catch((err: unknown) =>
    log.warn('cannot load kernel modules', { modules: names.join(' '), error: (err as Error).message }),
  );
}

let reporting = false;

/**
 * Starts free page reporting, once, after the first container has started: the balloon
 * driver tells the host which guest pages are free, and QEMU gives them back to the host, so
 * what the boot touched and freed (the unpacked initramfs, start-up buffers) stops costing host
 * memory. Loaded here rather than at boot to keep it off the start's path; the minimal kernel
 * has it built in.
 */
export function startFreePageReporting(): void {
  if (reporting) return;
  reporting = true;
  setTimeout(() => void loadModules(['virtio_balloon']), 0);
}

/** Whether a process spec may administer networking (CAP_NET_ADMIN in any set). */
export function mayAdministerNetwork(capabilities: Record<string, unknown> | undefined): boolean {
  return Object.values(capabilities ?? {}).some((set) => Array.isArray(set) && set.includes('CAP_NET_ADMIN'));
}
