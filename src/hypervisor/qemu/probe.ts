import { spawn } from 'node:child_process';
import { which } from '../../sys/exec.js';
import type { DeviceDiscovery } from '../hypervisor.js';
import { QEMU_BINARY } from './qemu.js';
import * as q from './switches.js';

/**
 * Boots the guest kernel under KVM straight to a trivial init (/bin/true in the initramfs).
 * The init exits, the kernel panics and reboots, and QEMU (-no-reboot) exits: if that happens
 * within the deadline, KVM really runs this kernel. On a host where KVM only pretends (a
 * paravirtual nested hypervisor), the kernel hangs early and the deadline ends the probe.
 */
export async function probeKvmBoot(
  kernel: string,
  initrd: string,
  deviceDiscovery: DeviceDiscovery,
  timeoutMs = 15000,
): Promise<boolean> {
  const binary = await which(QEMU_BINARY);
  if (!binary) return false;
  const args = [
    ...q.machine('microvm', { acpi: deviceDiscovery === 'acpi' }),
    ...q.accel('kvm'),
    ...q.cpu('host'),
    ...q.memory(128),
    ...q.noDefaults(),
    ...q.noGraphics(),
    ...q.noReboot(),
    ...q.kernel(kernel),
    ...q.initrd(initrd),
    ...q.append('quiet panic=-1 reboot=t rdinit=/bin/true'),
  ];
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
