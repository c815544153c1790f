import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Arch, archProfile } from './arch.js';
import type { Accel } from './hypervisor.js';

/**
 * The guest's CPU model (per architecture, see arch.ts). Under TCG on x86, `max` is QEMU's own
 * model (the same on every host with the same QEMU); on arm64 the model measured fastest;
 * under KVM, `host` passes the host's CPU through. A named model (`qemu64`,
 * `Icelake-Server`, `EPYC`) makes the guest see the same CPU on every host, which is what a
 * fleet of mixed hosts wants, and what tests use to stand for other hosts.
 *
 * Anything made for the CPU the guest sees (the agent's V8 startup snapshot) is keyed on
 * `guestCpuIdentity`, never on the host the image was built on.
 */
export function defaultCpuModel(accel: Accel, arch: Arch = 'x86_64'): string {
  return archProfile(arch).defaultCpuModel(accel);
}

/**
 * The model names in `qemu-system-* -cpu help` output: "x86 NAME  description" lines from
 * qemu-system-x86_64, an indented NAME per line from qemu-system-aarch64 (the lists of
 * feature flags that follow are several words a line).
 */
export function parseCpuHelp(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^x86\s+(\S+)/.exec(line) ?? /^\s+(\S+)\s*$/.exec(line);
    if (m?.[1]) names.push(m[1]);
  }
  return names;
}

/**
 * What decides the CPU the guest sees: the model, the accelerator and the QEMU binary that
 * implements both; with `host` under KVM, the host CPU's own model and feature flags too.
 */
export async function guestCpuIdentity(options: {
  cpuModel: string;
  accel: Accel;
  qemuId: string;
  cpuinfo?: string;
}): Promise<string> {
  const parts = [`model ${options.cpuModel}`, `accel ${options.accel}`, `qemu ${options.qemuId}`];
  if (options.accel === 'kvm' && options.cpuModel === 'host') {
    const cpuinfo = options.cpuinfo ?? (await readFile('/proc/cpuinfo', 'utf8').catch(() => ''));
    const first = cpuinfo.split('\n\n')[0] ?? '';
    const field = (name: string) =>
      first
        .split('\n')
        .find((l) => l.startsWith(name))
        ?.split(':')[1]
        ?.trim() ?? '';
    const features = createHash('sha256')
      .update(`${field('vendor_id')} ${field('cpu family')} ${field('model')} ${field('flags')}`)
      .digest('hex')
      .slice(0, 16);
    parts.push(`host-cpu ${features}`);
  }
  return parts.join('\n');
}
