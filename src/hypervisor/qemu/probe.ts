import { spawn } from 'node:child_process';
import { findSystemTool } from '../../sys/system-tool.js';
import { type Arch, archProfile } from '../arch.js';
import { defaultCpuModel } from '../cpu-model.js';
import type { DeviceDiscovery } from '../hypervisor.js';
import { trivialBootCommandLine } from './command-line.js';

/**
 * Boots the guest kernel under KVM straight to a trivial init. If QEMU exits within the
 * deadline, KVM really runs this kernel; on a host where KVM only pretends (a paravirtual
 * nested hypervisor), the kernel hangs early and the deadline ends the probe.
 */
export async function probeKvmBoot({
  kernel,
  initrd,
  deviceDiscovery,
  timeoutMs = 15000,
  arch = 'x86_64',
}: {
  kernel: string;
  initrd: string;
  deviceDiscovery: DeviceDiscovery;
  timeoutMs?: number;
  arch?: Arch;
}): Promise<boolean> {
  const binary = findSystemTool(archProfile(arch).qemuBinary);
  if (!binary) return false;
  const args = trivialBootCommandLine({
    arch,
    kernel,
    initrd,
    accel: 'kvm',
    deviceDiscovery,
    memoryMiB: 128,
    cpuModel: defaultCpuModel('kvm', arch),
  });
  return new Promise((resolve) => {
    const child = spawn(binary, args, { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', () => resolve(false));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}
