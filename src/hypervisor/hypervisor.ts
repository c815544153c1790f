import type { Duplex, Writable } from 'node:stream';
import type { CgroupLimits } from '../sys/cgroup.js';
import type { Arch } from './arch.js';

/** What the sandbox asks of a VM. Nothing QEMU-specific: another VMM can take the same. */
export interface VmConfig {
  id: string;
  /** Directory for this VM's sockets and console log; created and removed by the caller. */
  runDir: string;
  kernel: string;
  initrd: string;
  /** The guest root filesystem image, attached read-only. */
  rootfs: string;
  /**
   * A container's root on disks (see storage/rootfs-disks.ts): its image read-only and a
   * writable disk of its own, which the guest joins with overlayfs instead of using the share.
   */
  rootfsDisks?: {
    image: string;
    writable: string;
    writableBytes: number;
    /**
     * A fork's writable disk (see snapshot/disks.ts): a qcow2 overlay whose backing file (a
     * snapshot's frozen copy, read-only) is `backing`. Raw, without.
     */
    backing?: string;
  };
  /** Host directory shared with the guest over 9p (see storage/share.ts). */
  shareDir: string;
  /**
   * Whether the guest may write at the top of the share. Only hull's own guests (the snapshot
   * build) may: a sandbox's share is read-only there, so the paths the host mounts containers
   * at stay the host's.
   */
  shareRootWritable?: boolean;
  /** The guest's architecture (see arch.ts); x86_64 when not given. */
  arch?: Arch;
  vcpus: number;
  memoryMiB: number;
  accel: Accel;
  /** The guest CPU model (`-cpu`): what the guest, and V8's code in it, sees (see cpu-model.ts). */
  cpuModel: string;
  /**
   * A read-only disk image holding the agent's startup snapshot, built for this very CPU model
   * (see image/snapshot.ts); none boots the agent without one.
   */
  agentSnapshot?: string;
  /** Words for hull-init on the kernel command line (`hull.build_snapshot`). */
  guestArgs?: string[];
  /**
   * How the guest kernel finds its virtio-mmio devices: from ACPI tables, or (for kernels
   * without ACPI) from virtio_mmio.device= words QEMU adds to the command line.
   */
  deviceDiscovery: DeviceDiscovery;
  /** The host's TSC rate, told to TCG guests so they need not measure it (see tsc.ts). */
  tscKhz?: number;
  /** TCG's translation cache in MiB (the vm.tcg_cache_mib setting); a default without. */
  tcgCacheMiB?: number;
  /** Network cards on taps made in a host network namespace (see network/), if any. */
  network?: VmNetwork;
  /** Verbose guest logs (the agent logs at debug level on the console). */
  debug?: boolean;
  /**
   * A unix socket the VMM listens on for `hull debug-console`: a root shell in the guest, on a
   * virtio-serial port of its own. Its directory is the VMM's to write in. None: no such port.
   */
  debugConsole?: string;
  /**
   * The sandbox's host cgroup (see sandbox/host-cgroup.ts): its path, its limits, and the
   * process that owns the VM (monitor or shim), which is in it while the VM runs. None: a
   * cgroup of the VMM's own, `/hull/<id>`, sized to the VM.
   */
  hostCgroup?: { path: string; limits: CgroupLimits; owner?: number };
  /**
   * The VM's part in templating (see src/template/): none, an ordinary VM with memory of its
   * own; otherwise its RAM is the template's memory, held by the host and given as a file
   * descriptor of this process, and so is the file of the template's device state.
   */
  template?: VmTemplateRole;
}

/**
 * A template boots with its RAM mapped shared from `memoryFd` and, once its agent waits, is
 * paused and its device state written to `stateFd` (Vm.saveTemplate). A clone maps that
 * memory private (copy-on-write: it never changes the template's) and resumes from the state
 * read from `stateFd`, without booting. Both must be given the same devices and sizes.
 */
export interface VmTemplateRole {
  /**
   * `restore`: a saved VM (see src/snapshot/) resumed from the state on `stateFd`, which holds
   * its RAM too; its memory is its own (`memoryFd` is not used).
   */
  role: 'template' | 'clone' | 'restore';
  memoryFd: number;
  stateFd: number;
  /**
   * A template only: its RAM and devices loaded from a saved VM's state on this descriptor
   * instead of booted (a snapshot of a running sandbox made into a template, for forks).
   */
  loadFd?: number;
  /**
   * A clone only: the state on `stateFd` holds the RAM too (a fork streamed from its parent,
   * see snapshot/state-stream.ts), loaded over the template's memory mapped private. The
   * template's pages are only a base already in memory: the stream gives every page that is
   * not zero, and QEMU clears those it says are zero.
   */
  withRam?: boolean;
  /**
   * A clone or restore that is a copy of a saved running VM (a fork, a sandbox started from a
   * snapshot): says, once the state is loaded, the guest-physical address of its kernel's boot
   * id (as the guest told it), whose "not made yet" byte the VMM zeroes before the VM runs
   * (qemu/boot-id.ts); undefined keeps the boot id the state has.
   */
  freshBootId?: (signal: AbortSignal) => Promise<bigint | undefined>;
}

/**
 * The VM's network cards. Each is a tap device the VMM makes in the client's network
 * namespace, which it alone holds open: the tap disappears with the VMM. A card with no tap
 * (a template's: each clone attaches its own) has no backend.
 */
export interface VmNetwork {
  netns: string;
  nics: { tap: string; mac: string }[];
  /** In-kernel virtio-net (vhost-net) where the host has it; QEMU's own otherwise. */
  vhost: boolean;
}

export type Accel = 'kvm' | 'tcg';
export type DeviceDiscovery = 'acpi' | 'cmdline';

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The VMM's cgroup ran out of memory and the kernel killed it. */
  oomKilled?: boolean;
  /** The VM's share server died (pid given), so the VM, its files gone, was stopped. */
  shareServerLost?: number;
  /**
   * Whether stop() ended the VM, as the VMM's own account of its end says (see
   * qemu/vm-end.ts): false when the VM ended by itself (a guest kernel's panic, the VMM
   * killed), even if a stop() came in while that exit was on its way. Undefined when the
   * VMM's exit does not tell: the caller judges by what it saw first.
   */
  byStop?: boolean;
  /** The VMM's reason for the end, when it gave one (QEMU's SHUTDOWN: 'guest-reset', 'host-qmp-quit'). */
  shutdownReason?: string;
}

/** What the VMM said of its VM's end just before ending it (QEMU: QMP SHUTDOWN, GUEST_PANICKED). */
export interface VmEndNotice {
  /** The guest ended the VM (a kernel panic, a reset or power-off from inside), not the host. */
  byGuest: boolean;
  /** The VMM's reason ('guest-reset', 'guest-panic', 'host-qmp-quit'...). */
  reason: string;
}

/** A running VM. `stop()` is safe to call twice and after the VM exited by itself. */
export interface Vm {
  readonly pid: number;
  /** The byte stream to the guest agent. */
  readonly agentChannel: Duplex;
  readonly consoleLog: string;
  /** Settles when the VMM process has exited, whatever the reason. */
  readonly exited: Promise<VmExit>;
  /**
   * Settles when the VMM says the VM is ending, before it exits: seconds may pass between the
   * two (QEMU cleans up, then hull reads and removes its cgroup). Never settles if the VMM
   * ends without saying (killed).
   */
  readonly endAnnounced: Promise<VmEndNotice>;
  /** Ends the VM: asks the VMM to quit, then kills it if it has not exited by the deadline. */
  stop(options?: { graceMs?: number }): Promise<void>;
  /**
   * A template only: pauses the VM and writes its device state (not its RAM, which is the
   * template's memory already) to the state file it was given. The VM stays paused.
   */
  saveTemplate(signal: AbortSignal): Promise<void>;
  /**
   * Pauses the VM and writes its saved state to `sink`: its devices, and its RAM unless
   * `ignoreSharedMemory` (a template's, whose RAM is a file of its own). Left paused, unless
   * `resume`, in which case it runs on once the state is written (a snapshot of a running VM).
   */
  saveState(
    sink: Writable,
    options: {
      ignoreSharedMemory: boolean;
      resume: boolean;
      /** Runs once the VM is stopped, before its state is written: its disks are still then. */
      whileStopped?: () => Promise<void>;
    },
    signal: AbortSignal,
  ): Promise<void>;
}

export interface Hypervisor {
  /** Starts a VM and returns once the VMM is running and its channels are connected. */
  start(config: VmConfig, signal: AbortSignal): Promise<Vm>;
  /**
   * A cheap fingerprint of the VMM binary (path, size, modification time): what was made for
   * one VMM (the agent's snapshot) is made again when it changes.
   */
  identity(): Promise<string>;
  /** The VMM's own version line, for `hull env` and `hull check`. */
  version(signal?: AbortSignal): Promise<string>;
  /** The guest CPU models this VMM offers. */
  cpuModels(signal?: AbortSignal): Promise<string[]>;
  /** The options (`name=value` after the model in `-cpu`) CPU model `model` takes; empty if unknown. */
  cpuModelOptions(model: string, signal?: AbortSignal): Promise<string[]>;
  /**
   * Everything about a VM that its clones must share with their template (devices, sizes,
   * CPU, kernel command line, the VMM binary), as one string: templates are keyed by it.
   */
  templateShape(config: VmConfig): Promise<string>;
}
