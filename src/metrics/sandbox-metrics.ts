import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BootRecord } from '../trace/boot-trace.js';

/** Boot phases last from milliseconds (a host step) to seconds (a kernel under emulation). */
const PHASE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

/** What is known of one container and its sandbox at a scrape. */
export interface SandboxSample {
  id: string;
  status: string;
  /** The container's cgroup in the guest (where its own limits apply), when it answered. */
  guest?: { memoryBytes: number; memoryLimitBytes?: number; cpuSeconds: number; pids: number };
  /** The host processes of its sandbox. */
  host: { process: 'qemu' | 'monitor'; pssBytes: number; cpuSeconds: number }[];
  /** How its boot went, phase by phase (see trace/), when it was recorded. */
  boot?: BootRecord;
}

/**
 * The Prometheus registry of one scrape, in the text format that kata-monitor serves for
 * Kata: how many sandboxes there are by state, each container's use in its guest, and each
 * sandbox's cost on the host (QEMU's and its monitor's memory and CPU).
 */
export function sandboxRegistry(samples: SandboxSample[]): Registry {
  const registry = new Registry();
  const sandboxes = new Gauge({
    name: 'hull_sandboxes',
    help: 'Sandboxes under the runtime root, by state',
    labelNames: ['status'],
    registers: [registry],
  });
  const memory = new Gauge({
    name: 'hull_container_memory_usage_bytes',
    help: "Memory the container's cgroup uses in its guest",
    labelNames: ['id'],
    registers: [registry],
  });
  const limit = new Gauge({
    name: 'hull_container_memory_limit_bytes',
    help: "The container's memory limit in its guest (absent without one)",
    labelNames: ['id'],
    registers: [registry],
  });
  const cpu = new Counter({
    name: 'hull_container_cpu_seconds_total',
    help: "CPU time of the container's cgroup in its guest",
    labelNames: ['id'],
    registers: [registry],
  });
  const pids = new Gauge({
    name: 'hull_container_pids',
    help: "Tasks in the container's cgroup in its guest",
    labelNames: ['id'],
    registers: [registry],
  });
  const hostMemory = new Gauge({
    name: 'hull_sandbox_host_pss_bytes',
    help: 'Proportional set size of the sandbox on the host, by process (qemu, monitor)',
    labelNames: ['id', 'process'],
    registers: [registry],
  });
  const hostCpu = new Counter({
    name: 'hull_sandbox_host_cpu_seconds_total',
    help: 'CPU time of the sandbox on the host, by process (qemu, monitor)',
    labelNames: ['id', 'process'],
    registers: [registry],
  });
  const phases = new Histogram({
    name: 'hull_boot_phase_seconds',
    help: 'Duration of each boot phase (host and guest) of the sandboxes under the root',
    labelNames: ['phase', 'where'],
    buckets: PHASE_BUCKETS,
    registers: [registry],
  });
  const byStatus = new Map<string, number>();
  for (const s of ['created', 'running', 'paused', 'stopped']) byStatus.set(s, 0);
  for (const sample of samples) {
    byStatus.set(sample.status, (byStatus.get(sample.status) ?? 0) + 1);
    if (sample.guest) {
      memory.set({ id: sample.id }, sample.guest.memoryBytes);
      if (sample.guest.memoryLimitBytes !== undefined)
        limit.set({ id: sample.id }, sample.guest.memoryLimitBytes);
      cpu.inc({ id: sample.id }, sample.guest.cpuSeconds);
      pids.set({ id: sample.id }, sample.guest.pids);
    }
    for (const p of sample.boot?.phases ?? []) phases.observe({ phase: p.name, where: p.where }, p.seconds);
    for (const p of sample.host) {
      hostMemory.set({ id: sample.id, process: p.process }, p.pssBytes);
      hostCpu.inc({ id: sample.id, process: p.process }, p.cpuSeconds);
    }
  }
  for (const [status, count] of byStatus) sandboxes.set({ status }, count);
  return registry;
}
