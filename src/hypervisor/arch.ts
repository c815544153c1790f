import { HullError } from '../errors.js';
import type { Accel } from './hypervisor.js';

/**
 * The guest architectures hull runs, as data: everything that differs between them (the QEMU
 * binary and machine, the console, the CPU model, Debian's names, the ELF machine number) is
 * here, read by the one QEMU driver and the one image builder.
 */
export type Arch = 'x86_64' | 'arm64';

type MachineOptions = Record<string, string | number | boolean | undefined>;

export interface ArchProfile {
  name: Arch;
  /** Debian's name for it (dpkg --print-architecture, package suffixes such as `:arm64`). */
  debian: string;
  /** What `uname -m` says in a guest of this architecture. */
  unameMachine: string;
  /** Node's process.arch on a host of this architecture. */
  nodeArch: string;
  /** The e_machine field of this architecture's ELF executables. */
  elfMachine: number;
  qemuBinary: string;
  /** The Debian package that installs qemuBinary. */
  qemuPackage: string;
  /** QEMU's machine type and its options. */
  machine(options: { accel: Accel; acpi: boolean; memoryBackend?: string }): {
    type: string;
    options: MachineOptions;
  };
  /** virtio-mmio transports the machine has: every virtio device takes one, none is hotplugged. */
  virtioMmioSlots: number;
  /** The guest kernel's console: the machine's first serial port. */
  console: string;
  /**
   * The CPU model when none is configured. Under KVM the host's; under TCG the model measured
   * fastest that runs the image (see below).
   */
  defaultCpuModel(accel: Accel): string;
  /** QEMU's type name of CPU model M is M plus this (`-device M<suffix>,help` lists its options). */
  cpuTypeSuffix: string;
  /** Kernel command-line words that make a panic or reboot end the VM (QEMU has -no-reboot). */
  powerOffArgs: string[];
  /** Whether the kernel takes the host's TSC rate (tsc_early_khz) instead of measuring it. */
  tscHint: boolean;
  /** Kernel command-line words only this architecture knows. */
  kernelArgs: string[];
  /** Debian's kernel metapackage for guests of this architecture. */
  kernelPackage: string;
  /**
   * How `hull image build --kernel minimal` builds this architecture's kernel: Linux's ARCH=,
   * the make target, and where the image it makes is (one QEMU's -kernel takes).
   */
  minimalKernel: { linuxArch: string; target: string; output: string };
  /** The kernel modules that provide KVM on a host of this architecture (one is enough). */
  kvmModules: string[];
  /** The cross C compiler Debian ships for building this architecture's programs elsewhere. */
  crossCompiler: string;
  /** The Debian packages of that compiler and the C library it links against. */
  crossPackages: string[];
}

const X86_64: ArchProfile = {
  name: 'x86_64',
  debian: 'amd64',
  unameMachine: 'x86_64',
  nodeArch: 'x64',
  elfMachine: 62, // EM_X86_64
  qemuBinary: 'qemu-system-x86_64',
  qemuPackage: 'qemu-system-x86',
  // microvm: no firmware, no PCI; the console on the ISA serial port.
  machine: ({ acpi, memoryBackend }) => ({
    type: 'microvm',
    options: { acpi, rtc: true, pcie: false, 'isa-serial': true, 'memory-backend': memoryBackend },
  }),
  virtioMmioSlots: 8,
  console: 'ttyS0',
  defaultCpuModel: (accel) => (accel === 'kvm' ? 'host' : 'max'),
  cpuTypeSuffix: '-x86_64-cpu',
  // A reboot by triple fault, which -no-reboot turns into QEMU's exit.
  powerOffArgs: ['reboot=t'],
  tscHint: true,
  kernelArgs: ['noreplace-smp'],
  kernelPackage: 'linux-image-amd64',
  minimalKernel: { linuxArch: 'x86', target: 'bzImage', output: 'arch/x86/boot/bzImage' },
  kvmModules: ['kvm_intel', 'kvm_amd'],
  crossCompiler: 'x86_64-linux-gnu-gcc',
  crossPackages: ['gcc-x86-64-linux-gnu', 'libc6-dev-amd64-cross'],
};

const ARM64: ArchProfile = {
  name: 'arm64',
  debian: 'arm64',
  unameMachine: 'aarch64',
  nodeArch: 'arm64',
  elfMachine: 183, // EM_AARCH64
  qemuBinary: 'qemu-system-aarch64',
  qemuPackage: 'qemu-system-arm',
  // virt: a device tree and no firmware with -kernel, a PL011 console, 32 virtio-mmio
  // transports. The interrupt controller is the host's under KVM, TCG's newest otherwise.
  machine: ({ accel, memoryBackend }) => ({
    type: 'virt',
    options: { 'gic-version': accel === 'kvm' ? 'host' : 'max', 'memory-backend': memoryBackend },
  }),
  virtioMmioSlots: 32,
  console: 'ttyAMA0',
  // Measured here, Debian's arm64 kernel to a trivial init: `max` 12.0 s (its emulated
  // pointer authentication is costly), `max,pauth-impdef=on` 4.3 s, `max,pauth=off` 3.3 s,
  // `cortex-a72` 2.6 s. A whole booted `hull run` of an arm64 busybox (agent snapshot made
  // for each model): cortex-a72 3.9-4.1 s, cortex-a76 4.6-4.9 s, max 14.6-14.9 s. Node and
  // the agent run on cortex-a72: Armv8.0 is all Node needs.
  defaultCpuModel: (accel) => (accel === 'kvm' ? 'host' : 'cortex-a72'),
  cpuTypeSuffix: '-arm-cpu',
  // PSCI: the kernel's reboot is a firmware call, which -no-reboot turns into QEMU's exit.
  powerOffArgs: [],
  // The generic timer's rate is in the device tree: nothing to measure.
  tscHint: false,
  kernelArgs: [],
  kernelPackage: 'linux-image-arm64',
  // The uncompressed Image: what Debian's arm64 kernel package ships too, and -kernel boots.
  minimalKernel: { linuxArch: 'arm64', target: 'Image', output: 'arch/arm64/boot/Image' },
  // KVM is usually built into arm64 kernels; /sys/module/kvm is there all the same.
  kvmModules: ['kvm'],
  crossCompiler: 'aarch64-linux-gnu-gcc',
  crossPackages: ['gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross'],
};

export const ARCHES: readonly ArchProfile[] = [X86_64, ARM64];

/** The names a user may give for each architecture: hull's, Debian's, the kernel's, OCI's. */
const ALIASES: Record<string, Arch> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  x64: 'x86_64',
  arm64: 'arm64',
  aarch64: 'arm64',
};

export function archProfile(arch: Arch): ArchProfile {
  return arch === 'arm64' ? ARM64 : X86_64;
}

/** An architecture named by a user (`--arch`, `vm.arch`, an OCI platform); undefined if unknown. */
export function parseArch(name: string): Arch | undefined {
  return ALIASES[name.trim().toLowerCase()];
}

/** Like parseArch, for input that must name one: a one-line error saying what is accepted. */
export function requireArch(name: string, where: string): Arch {
  const arch = parseArch(name);
  if (!arch) {
    throw new HullError(
      'ERR_USAGE',
      `${where}: unknown architecture ${JSON.stringify(name)}: use x86_64 (amd64) or arm64 (aarch64)`,
    );
  }
  return arch;
}

/** The architecture of the host hull runs on. */
export function hostArch(nodeArch: string = process.arch): Arch {
  const profile = ARCHES.find((a) => a.nodeArch === nodeArch);
  if (!profile) {
    throw new HullError('ERR_UNSUPPORTED', `hull does not run on ${nodeArch} hosts: x86_64 and arm64 only`);
  }
  return profile.name;
}

/** The architecture whose ELF machine number is `machine`, if hull runs it. */
export function archOfElfMachine(machine: number): Arch | undefined {
  return ARCHES.find((a) => a.elfMachine === machine)?.name;
}
