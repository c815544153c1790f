import { availableParallelism } from 'node:os';

/**
 * A container's linux.resources as the guest can apply them. crun in the guest runs on cgroup
 * v2 and already converts what v2 has an equivalent for (cpu shares to weight, swap, blkio
 * weight); what is left is what has no meaning in a VM, which runc ignores on v2 hosts and
 * crun refuses, failing the whole create. Those fields are dropped here, each with a warning
 * for the log, and the CPU and memory-node sets are mapped onto the VM's own.
 */

export interface GuestResources {
  resources: Record<string, unknown> | undefined;
  /** One line per field changed or dropped, for the log. */
  warnings: string[];
}

type Fields = Record<string, unknown>;

/** Fields with no cgroup v2 equivalent in the guest: [section, field, why]. */
const DROPPED: [string, string, string][] = [
  ['memory', 'kernel', 'kernel memory has no cgroup v2 limit'],
  ['memory', 'kernelTCP', 'kernel TCP memory has no cgroup v2 limit'],
  ['memory', 'swappiness', 'cgroup v2 has no per-cgroup swappiness'],
  ['memory', 'disableOOMKiller', 'cgroup v2 cannot disable the OOM killer'],
  ['memory', 'useHierarchy', 'cgroup v2 is always hierarchical'],
  ['cpu', 'realtimeRuntime', 'cgroup v2 has no realtime budget, and a vCPU is not realtime'],
  ['cpu', 'realtimePeriod', 'cgroup v2 has no realtime budget, and a vCPU is not realtime'],
  ['blockIO', 'leafWeight', 'cgroup v2 has no leaf weight'],
  ['blockIO', 'weightDevice', "it names the host's block devices, which the VM does not have"],
  ['blockIO', 'throttleReadBpsDevice', "it names the host's block devices, which the VM does not have"],
  ['blockIO', 'throttleWriteBpsDevice', "it names the host's block devices, which the VM does not have"],
  ['blockIO', 'throttleReadIOPSDevice', "it names the host's block devices, which the VM does not have"],
  ['blockIO', 'throttleWriteIOPSDevice', "it names the host's block devices, which the VM does not have"],
];

/**
 * `resources` as written in config.json (or an update), adapted to a VM with `vcpus` CPUs.
 * The input is not changed.
 */
export function guestResources(resources: unknown, vcpus: number): GuestResources {
  if (!resources || typeof resources !== 'object') return { resources: undefined, warnings: [] };
  const out = structuredClone(resources) as Fields;
  const warnings: string[] = [];
  for (const [section, field, why] of DROPPED) {
    const fields = out[section] as Fields | undefined;
    if (!fields || typeof fields !== 'object' || fields[field] === undefined || fields[field] === null)
      continue;
    delete fields[field];
    warnings.push(`linux.resources.${section}.${field} is ignored: ${why}`);
  }
  const cpu = out.cpu as Fields | undefined;
  if (cpu && typeof cpu === 'object') {
    if (typeof cpu.cpus === 'string' && cpu.cpus.trim()) {
      const wanted = cpuCount(cpu.cpus);
      const mapped = rangeOf(Math.min(wanted, vcpus));
      if (mapped !== cpu.cpus) {
        warnings.push(
          `linux.resources.cpu.cpus "${cpu.cpus}" names host CPUs; the container gets ${mapped} of the VM's ${vcpus} vCPU(s) instead`,
        );
        cpu.cpus = mapped;
      }
    }
    if (typeof cpu.mems === 'string' && cpu.mems.trim() && cpu.mems.trim() !== '0') {
      warnings.push(`linux.resources.cpu.mems "${cpu.mems}" names host memory nodes; the VM has one, node 0`);
      cpu.mems = '0';
    }
  }
  return { resources: out, warnings };
}

/**
 * vCPUs for a VM of its own that covers the container's CPU set: as many as the set names
 * (no more than the host has), and never fewer than `base`.
 */
export function vcpusCovering(resources: unknown, base: number): number {
  const cpus = ((resources as Fields | undefined)?.cpu as Fields | undefined)?.cpus;
  if (typeof cpus !== 'string' || !cpus.trim()) return base;
  return Math.max(base, Math.min(cpuCount(cpus), availableParallelism()));
}

/** How many CPUs a cpuset list ("0-3,8,10-11") names; at least 1. */
export function cpuCount(list: string): number {
  const cpus = new Set<number>();
  for (const part of list.split(',')) {
    const [from, to] = part
      .trim()
      .split('-')
      .map((n) => Number.parseInt(n, 10));
    if (from === undefined || !Number.isInteger(from)) continue;
    const last = to !== undefined && Number.isInteger(to) ? to : from;
    for (let cpu = from; cpu <= last && cpus.size < 4096; cpu++) cpus.add(cpu);
  }
  return Math.max(1, cpus.size);
}

const rangeOf = (count: number) => (count <= 1 ? '0' : `0-${count - 1}`);
