import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  // One loaded already (by the VM's template, see loadDriversOfDevices) costs no modprobe process.
  const missing = (
    await Promise.all(names.map(async (name) => ((await isLoaded(name)) ? [] : [name])))
  ).flat();
  if (!missing.length) return;
  await runTool('/sbin/modprobe', ['-a', ...missing]).catch((err: unknown) =>
    log.warn('cannot load kernel modules', { modules: names.join(' '), error: (err as Error).message }),
  );
}

/** The virtio device ID of a network card (virtio spec 5.1), as /sys shows it. */
const VIRTIO_NET_DEVICE = '0x0001';

/**
 * Loads, before the agent first answers, the drivers a device the VM was given will need:
 * virtio_net for network cards (setupNetwork), ext4 for a writable root disk (the first
 * container's mount). Loaded later, on first use, each costs a modprobe process and the
 * module's load on the path of every sandbox's create (under TCG ~0.5 s for ext4 and its
 * dependencies); loaded now, a VM template has them, and so has every clone of it. A VM
 * without such devices loads nothing.
 */
export async function loadDriversOfDevices(hasWritableRootDisk: () => Promise<boolean>): Promise<void> {
  const names: string[] = [];
  if (await hasVirtioDevice(VIRTIO_NET_DEVICE)) names.push('virtio_net');
  if (await hasWritableRootDisk()) names.push('ext4');
  if (names.length) await loadModules(names);
}

async function hasVirtioDevice(deviceId: string): Promise<boolean> {
  const devices = '/sys/bus/virtio/devices';
  for (const name of await readdir(devices).catch(() => [] as string[])) {
    const id = await readFile(join(devices, name, 'device'), 'utf8').catch(() => '');
    if (id.trim() === deviceId) return true;
  }
  return false;
}

/** Whether a module is loaded or built in (/sys/module has it either way once it has parameters or is loaded). */
async function isLoaded(name: string): Promise<boolean> {
  return access(join('/sys/module', name)).then(
    () => true,
    () => false,
  );
}

let reporting = false;

/**
 * Whether a guest booted with this kernel command line reports its free pages: not one booted
 * as a template (`hull.template`), nor so any clone of it. A clone's RAM is its template's
 * memory mapped private, and QEMU gives a reported page back by punching a hole in that file,
 * which the template's seals refuse: nothing returns to the host. All reporting brings a clone
 * is guest pages written on top of its template's (a modprobe process with kmod's libraries
 * read from the root disk and relocated, the module, the free lists walked). An idle cloned
 * busybox `sleep`, 3 side by side: QEMU's anonymous memory besides translated code 36.1 ->
 * 33.6 MiB, of which the guest's own pages 13.9 -> 12.0; a templated `hull run true` as fast
 * (0.996, 12 pairs).
 */
export function reportsFreePages(kernelCommandLine: string): boolean {
  return !/(^|\s)hull\.template(\s|$)/.test(kernelCommandLine);
}

/** Free page reporting stays off in this guest (see reportsFreePages). */
export function leaveFreePagesUnreported(): void {
  reporting = true;
}

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
  // A second later: loading the module (a modprobe process) would compete with the container
  // it follows for the guest CPU just as it starts, and an idle sandbox loses nothing by it.
  setTimeout(() => void loadModules(['virtio_balloon']).then(reportSmallerBlocks), 1000);
}

/**
 * Free pages are reported in blocks of 2^order pages. The driver sets the order to the
 * pageblock (2 MiB) when it registers, overwriting any setting from the command line, so it is
 * lowered here, after the driver is loaded. What a container frees is scattered in smaller
 * blocks: 60 MiB written to a tmpfs and removed came back 38 MiB at order 9, 57 at order 5
 * (128 KiB) and 63 at order 3, so order 5 gives back most of it in few reports.
 */
const PAGE_REPORTING_ORDER = 5;

async function reportSmallerBlocks(): Promise<void> {
  const file = '/sys/module/page_reporting/parameters/page_reporting_order';
  await writeFile(file, `${PAGE_REPORTING_ORDER}\n`).catch((err: unknown) =>
    log.warn('cannot set the page reporting order', { error: (err as Error).message }),
  );
}

/** Whether a process spec may administer networking (CAP_NET_ADMIN in any set). */
export function mayAdministerNetwork(capabilities: Record<string, unknown> | undefined): boolean {
  return Object.values(capabilities ?? {}).some((set) => Array.isArray(set) && set.includes('CAP_NET_ADMIN'));
}
