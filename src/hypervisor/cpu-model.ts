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

/** A `-cpu` argument: a model and QEMU CPU properties, `max,pauth=off` or `max,pauth-impdef=on`. */
export interface CpuSpec {
  model: string;
  options: { name: string; value: string }[];
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** name=value, each of a charset QEMU's option parser gives no meaning to (no `,`, `=`, quotes). */
const CPU_OPTION = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=([A-Za-z0-9_.-]{1,64})$/;
const MAX_CPU_OPTIONS = 16;

/**
 * Splits a configured CPU (`MODEL[,NAME=VALUE...]`) into its model and options, or says in a
 * few words why it is not one. The whole string goes on QEMU's command line as one argument,
 * so nothing in it may reach QEMU's option parser as more than a property: each part is of a
 * safe charset, and `help`, bare flags and `+feature` forms are refused.
 */
export function parseCpuSpec(text: string): CpuSpec | { error: string } {
  const [model = '', ...parts] = text.split(',');
  if (!MODEL_NAME.test(model)) return { error: `${JSON.stringify(model)} is not a CPU model name` };
  if (parts.length > MAX_CPU_OPTIONS) return { error: `more than ${MAX_CPU_OPTIONS} CPU options` };
  const options: CpuSpec['options'] = [];
  for (const part of parts) {
    const m = CPU_OPTION.exec(part);
    if (!m) return { error: `${JSON.stringify(part)} is not a CPU option of the form name=value` };
    if (options.some((o) => o.name === m[1])) return { error: `CPU option ${m[1]} is given twice` };
    options.push({ name: m[1]!, value: m[2]! });
  }
  return { model, options };
}

/** The property names in `qemu-system-* -device <cpu type>,help` output (`  name=<type> - ...`). */
export function parseCpuPropertyHelp(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s+([A-Za-z0-9][A-Za-z0-9_.-]*)=<[^>]*>/.exec(line);
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
