import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BootRecord } from '../trace/boot-trace.js';

/** Boot phases last from milliseconds (a host step) to seconds (a kernel under emulation). */
const PHASE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

/** A container's use of its guest, read from its cgroup there (where its own limits apply). */
export interface GuestUse {
  memoryBytes: number;
  memoryLimitBytes?: number;
  cpuSeconds: number;
  pids: number;
}

/** The whole guest's memory and CPU (its /proc), what the VM's kernel and containers use. */
export interface SandboxGuestUse {
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  cpuSeconds: number;
}

/** The host process that owns a sandbox's VM: a container's monitor or a pod's shim. */
export type HostProcess = 'qemu' | 'monitor' | 'shim';

/** What is known of one sandbox (a container's VM, or a pod's) at a scrape. */
export interface SandboxSample {
  id: string;
  status: string;
  /** Its containers: one for the OCI command line and `hull run`, a pod's for the shim. */
  containers: { id: string; guest?: GuestUse }[];
  /** The whole guest, when its agent answered. */
  guest?: SandboxGuestUse;
  /** The host processes of the sandbox. */
  host: { process: HostProcess; pssBytes: number; cpuSeconds: number }[];
  /** How its boot went, phase by phase (see trace/), when it was recorded. */
  boot?: BootRecord;
}

export const SANDBOX_STATUSES = ['created', 'running', 'paused', 'stopped'] as const;

/**
 * The Prometheus registry of sandboxes, in the text format that kata-monitor serves for
 * Kata: how many sandboxes there are by state, each container's use in its guest, and each
 * sandbox's cost on the host (QEMU's and its monitor's or shim's memory and CPU). Every status
 * is listed for a scrape of the whole root (`allStatuses`), so a count of 0 shows as 0.
 */
export function sandboxRegistry(samples: SandboxSample[], allStatuses = true): Registry {
  const registry = new Registry();
  const labels = ['id', 'sandbox'];
  const sandboxes = new Gauge({
    name: 'hull_sandboxes',
    help: 'Sandboxes under the runtime root, by state',
    labelNames: ['status'],
    registers: [registry],
  });
  const memory = new Gauge({
    name: 'hull_container_memory_usage_bytes',
    help: "Memory the container's cgroup uses in its guest",
    labelNames: labels,
    registers: [registry],
  });
  const limit = new Gauge({
    name: 'hull_container_memory_limit_bytes',
    help: "The container's memory limit in its guest (absent without one)",
    labelNames: labels,
    registers: [registry],
  });
  const cpu = new Counter({
    name: 'hull_container_cpu_seconds_total',
    help: "CPU time of the container's cgroup in its guest",
    labelNames: labels,
    registers: [registry],
  });
  const pids = new Gauge({
    name: 'hull_container_pids',
    help: "Tasks in the container's cgroup in its guest",
    labelNames: labels,
    registers: [registry],
  });
  const guestTotal = new Gauge({
    name: 'hull_sandbox_guest_memory_total_bytes',
    help: "Memory the sandbox's guest kernel has (MemTotal)",
    labelNames: ['id'],
    registers: [registry],
  });
  const guestUsed = new Gauge({
    name: 'hull_sandbox_guest_memory_used_bytes',
    help: "Memory in use in the sandbox's guest (MemTotal - MemAvailable): its kernel, agent and containers",
    labelNames: ['id'],
    registers: [registry],
  });
  const guestCpu = new Counter({
    name: 'hull_sandbox_guest_cpu_seconds_total',
    help: "CPU time of the sandbox's guest, every state but idle and iowait",
    labelNames: ['id'],
    registers: [registry],
  });
  const hostMemory = new Gauge({
    name: 'hull_sandbox_host_pss_bytes',
    help: 'Proportional set size of the sandbox on the host, by process (qemu, monitor or shim)',
    labelNames: ['id', 'process'],
    registers: [registry],
  });
  const hostCpu = new Counter({
    name: 'hull_sandbox_host_cpu_seconds_total',
    help: 'CPU time of the sandbox on the host, by process (qemu, monitor or shim)',
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
  if (allStatuses) for (const s of SANDBOX_STATUSES) byStatus.set(s, 0);
  for (const sample of samples) {
    byStatus.set(sample.status, (byStatus.get(sample.status) ?? 0) + 1);
    for (const { id, guest } of sample.containers) {
      if (!guest) continue;
      const key = { id, sandbox: sample.id };
      memory.set(key, guest.memoryBytes);
      if (guest.memoryLimitBytes !== undefined) limit.set(key, guest.memoryLimitBytes);
      cpu.inc(key, guest.cpuSeconds);
      pids.set(key, guest.pids);
    }
    if (sample.guest) {
      guestTotal.set({ id: sample.id }, sample.guest.memoryTotalBytes);
      guestUsed.set({ id: sample.id }, sample.guest.memoryUsedBytes);
      guestCpu.inc({ id: sample.id }, sample.guest.cpuSeconds);
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

/** Failures by error code: of command-line verbs (source cli), and of a shim's requests. */
export function failuresCounter(registry: Registry): Counter<'code' | 'source'> {
  return new Counter({
    name: 'hull_failures_total',
    help: 'Failed commands and requests, by error code and where they failed (cli, shim)',
    labelNames: ['code', 'source'],
    registers: [registry],
  });
}
