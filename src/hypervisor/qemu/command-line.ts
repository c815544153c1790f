import { dirname, join } from 'node:path';
import { archProfile } from '../arch.js';
import type { VmConfig } from '../hypervisor.js';
import * as q from './switches.js';

/** The 9p mount tag of the sandbox share; hull-init mounts it by this name. */
export const SHARE_TAG = 'hullshare';
/** The virtio-serial port name of the agent channel; the agent looks for it by this name. */
export const AGENT_PORT = 'agent.0';
/** The virtio-serial port of the debug console; hull-init starts a shell on it. */
export const DEBUG_CONSOLE_PORT = 'debug.0';

/** The QMP socket a VM with a debug console also listens on, beside the console's. */
export function debugQmpSocket(debugConsole: string): string {
  return join(dirname(debugConsole), 'qmp.sock');
}

export interface QemuPaths {
  agentSocket: string;
  qmpSocket: string;
  consoleLog: string;
}

/**
 * virtio-blk serial numbers: the guest finds its disks by these (the serial file of each virtio disk in sysfs), not by
 * probe order, which the number of disks and the machine type may change.
 */
export const ROOT_DISK_SERIAL = 'hull-root';
export const SNAPSHOT_DISK_SERIAL = 'hull-snapshot';
/** A container's root disks (see storage/rootfs-disks.ts); the agent finds them by these. */
export const IMAGE_DISK_SERIAL = 'hull-image';
export const WRITABLE_DISK_SERIAL = 'hull-disk';
/** The QEMU drive of the writable root disk, which a clone resizes (see qemu.ts). */
export const WRITABLE_DRIVE = 'writable';

/**
 * A container's root disks: the image read-only through the host's page cache (shared by
 * every VM of that image), the writable disk with O_DIRECT (the guest caches it already), and
 * discards from the guest punching holes in the file.
 */
function rootfsDiskSwitches(config: VmConfig): string[] {
  const disks = config.rootfsDisks;
  if (!disks) return [];
  return [
    ...q.drive({ id: 'image', file: disks.image, format: 'raw', if: 'none', readonly: true }),
    ...q.device('virtio-blk-device', { drive: 'image', serial: IMAGE_DISK_SERIAL }),
    ...q.drive({
      id: WRITABLE_DRIVE,
      file: disks.writable,
      format: disks.backing ? 'qcow2' : 'raw',
      if: 'none',
      cache: 'none',
      discard: 'unmap',
    }),
    ...q.device('virtio-blk-device', { drive: WRITABLE_DRIVE, serial: WRITABLE_DISK_SERIAL }),
  ];
}

/** The fd on which the VMM finds the tap of its network card `index` (hull-jail opens it). */
export function tapFd(index: number): number {
  return 10 + index;
}

/**
 * Where the VMM finds a template's memory and device-state file (see VmConfig.template):
 * descriptors hull opens and hands down through hull-jail, above the taps' (10-13).
 */
export const TEMPLATE_MEMORY_FD = 20;
export const TEMPLATE_STATE_FD = 21;

/**
 * A template's RAM is a file QEMU maps from the descriptor it was given: shared while the
 * template boots (what the guest writes goes to the template's memory), private in a clone
 * (copy-on-write). The `x-ignore-shared` migration capability (set over QMP) leaves that RAM
 * out of the saved state, which holds only the devices (about 70 KiB); a clone loads it from
 * its descriptor once QEMU has started.
 */
/** The id of a template's, a clone's or a saved VM's RAM backend: QEMU's name of that RAM. */
export const RAM_BACKEND_ID = 'ram';

function templateSwitches(config: VmConfig): string[] {
  const template = config.template;
  if (!template) return [];
  // A saved VM's RAM is in its state: memory of its own, named as its template's was (the
  // saved state names RAM blocks by the backend's id).
  if (template.role === 'restore') {
    return [
      ...q.object('memory-backend-ram', { id: RAM_BACKEND_ID, size: `${config.memoryMiB}M` }),
      ...q.incoming('defer'),
    ];
  }
  return [
    ...q.object('memory-backend-file', {
      id: RAM_BACKEND_ID,
      size: `${config.memoryMiB}M`,
      'mem-path': `/proc/self/fd/${TEMPLATE_MEMORY_FD}`,
      share: template.role === 'template',
    }),
    // The state is read once QMP has set x-ignore-shared (see qemu.ts resumeClone); a
    // template made from a saved VM loads that VM's RAM into its memory the same way.
    ...(template.role === 'clone' || template.loadFd !== undefined ? q.incoming('defer') : []),
  ];
}

/** A virtio-net card per tap, with the MAC address of the interface it stands for. */
function networkSwitches(config: VmConfig): string[] {
  return (config.network?.nics ?? []).flatMap((nic, index) =>
    nic.tap
      ? [
          ...q.netdev('tap', { id: `net${index}`, fd: tapFd(index), vhost: config.network!.vhost }),
          ...q.device('virtio-net-device', { netdev: `net${index}`, mac: nic.mac }),
        ]
      : q.device('virtio-net-device', { mac: nic.mac }),
  );
}

/**
 * Free page reporting, when a virtio-mmio slot is left (the root disk, the share and the
 * agent's port always take three) after the disks, the share, the agent's
 * port and the network cards: the guest's balloon driver names the pages it has freed, and
 * QEMU gives them back to the host, so memory a container used and let go stops costing the
 * host. Network cards come first: a fourth card takes the last slot. Not in templates and
 * their clones: QEMU 7.2 gives back a page of file-backed RAM by punching a hole in the file,
 * which a clone must not do to its template's memory (the seal refuses it, and QEMU then
 * gives nothing back).
 */
function balloonSwitches(config: VmConfig): string[] {
  if (config.template) return [];
  const used =
    3 + (config.agentSnapshot ? 1 : 0) + (config.rootfsDisks ? 2 : 0) + (config.network?.nics.length ?? 0);
  return used < archProfile(config.arch ?? 'x86_64').virtioMmioSlots
    ? q.device('virtio-balloon-device', { 'free-page-reporting': true })
    : [];
}

/**
 * TCG's translation cache in MiB when the vm.tcg_cache_mib setting gives none. QEMU reserves
 * a very large one by default. Measured here with farm-bench, each against 256 MiB in one run:
 * 64 MiB starts `hull run true` as fast (wall 1.01) and a container running dpkg, grep, perl
 * and apt as fast (0.98) with QEMU's peak 38 and 100 MiB smaller; 32 MiB is 14% slower to start.
 */
export const DEFAULT_TCG_CACHE_MIB = 64;

export function kernelCommandLine(
  config: Pick<VmConfig, 'arch' | 'debug' | 'accel' | 'tscKhz' | 'guestArgs' | 'debugConsole' | 'template'>,
): string {
  const arch = archProfile(config.arch ?? 'x86_64');
  return [
    `console=${arch.console}`,
    config.debug ? '' : 'quiet',
    'panic=-1',
    ...arch.powerOffArgs,
    // No hardware RNG: trust the CPU's, so getrandom() in Node never waits for entropy.
    'random.trust_cpu=on',
    'cryptomgr.notests',
    ...arch.kernelArgs,
    config.accel === 'tcg' && config.tscKhz && arch.tscHint ? `tsc_early_khz=${config.tscKhz}` : '',
    config.debug ? 'hull.debug' : '',
    config.debugConsole ? 'hull.debug_console' : '',
    // A template's guest (and so every clone's: they wake with its memory) is told it is one:
    // its agent then leaves free page reporting off (see guest/agent/kernel-modules.ts). Given
    // to clones and restores too, so that their command line is the template's.
    config.template ? 'hull.template' : '',
    ...(config.guestArgs ?? []),
  ]
    .filter(Boolean)
    .join(' ');
}

/** The machine, accelerator and CPU switches every hull VM shares, probe and benchmark included. */
function machineSwitches(
  config: Pick<VmConfig, 'arch' | 'accel' | 'deviceDiscovery' | 'cpuModel' | 'tcgCacheMiB' | 'template'>,
): string[] {
  const tcg = config.accel === 'tcg';
  const machine = archProfile(config.arch ?? 'x86_64').machine({
    accel: config.accel,
    acpi: config.deviceDiscovery === 'acpi',
    memoryBackend: config.template ? RAM_BACKEND_ID : undefined,
  });
  return [
    ...q.machine(machine.type, machine.options),
    ...(tcg ? q.accel('tcg', { 'tb-size': config.tcgCacheMiB ?? DEFAULT_TCG_CACHE_MIB }) : q.accel('kvm')),
    ...q.cpu(config.cpuModel),
  ];
}

/** Machine, size, no default devices, and the kernel to boot with its command line. */
function bootSwitches(
  config: Pick<
    VmConfig,
    | 'arch'
    | 'kernel'
    | 'initrd'
    | 'accel'
    | 'deviceDiscovery'
    | 'memoryMiB'
    | 'cpuModel'
    | 'tcgCacheMiB'
    | 'template'
  >,
  vcpus: number,
  cmdline: string,
): string[] {
  return [
    ...machineSwitches(config),
    ...q.smp(vcpus),
    ...q.memory(config.memoryMiB),
    ...q.noDefaults(),
    ...q.noGraphics(),
    ...q.noReboot(),
    ...q.kernel(config.kernel),
    ...q.initrd(config.initrd),
    ...q.append(cmdline),
  ];
}

/**
 * The same machine and kernel booted straight to a trivial init (/bin/true in the initramfs)
 * that exits: the kernel panics, reboots, and QEMU (-no-reboot) exits. It is the KVM probe,
 * and the floor the benchmark compares `hull run` with.
 */
export function trivialBootCommandLine(
  config: Pick<
    VmConfig,
    'arch' | 'kernel' | 'initrd' | 'accel' | 'deviceDiscovery' | 'tscKhz' | 'memoryMiB' | 'cpuModel'
  >,
): string[] {
  return bootSwitches(config, 1, `${kernelCommandLine(config)} rdinit=/bin/true`);
}

/**
 * The QEMU command line of a hull VM: a machine with no firmware and no PCI (x86's microvm,
 * arm64's virt; see arch.ts), with
 *  - the read-only guest root filesystem on a virtio disk, and the agent's startup snapshot on
 *    a second one when there is one,
 *  - the sandbox share over virtio-9p, in the mapped-xattr model: QEMU reads and sets each
 *    file's owner, mode and type as xattrs, which hull-share-server (the only way QEMU reaches
 *    the share) answers from the real files, keeping setuid bits and device nodes off the host;
 *    none for a VM whose container's root is on disks (see shareSwitches),
 *  - the agent channel on a virtio-serial port,
 *  - a virtio-net card per tap the sandbox's network has,
 *  - QMP and the agent channel as unix sockets hull listens on (QEMU connects to them, so
 *    they are ready the moment QEMU runs and nobody polls for a socket to appear),
 *  - the serial console written to a log file.
 */
/**
 * The share's 9p device, but for a VM whose container's root is on disks (`hull serve`'s
 * sandboxes): its guest never mounts the share, so neither the device (its request buffers
 * and coroutines) nor the hull-share-server behind it would serve anything (see qemu.ts).
 */
function shareSwitches(config: VmConfig): string[] {
  if (config.rootfsDisks) return [];
  return [
    ...q.fsdev('local', { id: 'share', path: config.shareDir, security_model: 'mapped-xattr' }),
    ...q.device('virtio-9p-device', { fsdev: 'share', mount_tag: SHARE_TAG }),
  ];
}

export function qemuCommandLine(config: VmConfig, paths: QemuPaths): string[] {
  return [
    ...q.name(`hull-${config.id}`),
    ...bootSwitches(config, config.vcpus, kernelCommandLine(config)),
    ...templateSwitches(config),
    ...q.drive({ id: 'rootfs', file: config.rootfs, format: 'raw', if: 'none', readonly: true }),
    ...q.device('virtio-blk-device', { drive: 'rootfs', serial: ROOT_DISK_SERIAL }),
    ...(config.agentSnapshot
      ? [
          ...q.drive({
            id: 'snapshot',
            file: config.agentSnapshot,
            format: 'raw',
            if: 'none',
            readonly: true,
          }),
          ...q.device('virtio-blk-device', { drive: 'snapshot', serial: SNAPSHOT_DISK_SERIAL }),
        ]
      : []),
    ...rootfsDiskSwitches(config),
    ...shareSwitches(config),
    ...networkSwitches(config),
    ...balloonSwitches(config),
    ...q.chardev('socket', { id: 'agent', path: paths.agentSocket, server: false }),
    ...q.device('virtio-serial-device', { max_ports: config.debugConsole ? 3 : 2 }),
    ...q.device('virtserialport', { chardev: 'agent', name: AGENT_PORT }),
    ...(config.debugConsole
      ? [
          ...q.chardev('socket', { id: 'debug', path: config.debugConsole, server: true, wait: false }),
          ...q.device('virtserialport', { chardev: 'debug', name: DEBUG_CONSOLE_PORT }),
          // A second QMP monitor beside it, for root to inspect the VMM (query-migrate says
          // what would keep the VM from being saved).
          ...q.chardev('socket', {
            id: 'debugqmp',
            path: debugQmpSocket(config.debugConsole),
            server: true,
            wait: false,
          }),
          ...q.mon('debugqmp', 'control'),
        ]
      : []),
    ...q.chardev('socket', { id: 'qmp', path: paths.qmpSocket, server: false }),
    ...q.mon('qmp', 'control'),
    ...q.chardev('file', { id: 'console', path: paths.consoleLog }),
    ...q.serial('console'),
    // QEMU's own seccomp filter: no new privileges, processes, scheduling or obsolete calls.
    ...q.sandbox({
      obsolete: 'deny',
      elevateprivileges: 'deny',
      spawn: 'deny',
      resourcecontrol: 'deny',
    }),
  ];
}
