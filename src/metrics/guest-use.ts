import type { AgentClient } from '../agent/client.js';
import { UNLIMITED } from '../oci/cgroup-files.js';
import { runcStats } from '../oci/runc-stats.js';
import type { GuestUse, SandboxGuestUse } from './sandbox-metrics.js';

/** A container's cgroup in its guest, read as runc's stats read it; absent if it did not answer. */
export async function guestUse(
  agent: AgentClient,
  id: string,
  signal: AbortSignal,
): Promise<GuestUse | undefined> {
  const files = await agent.statsContainer(id, signal).catch(() => undefined);
  if (!files) return undefined;
  const { memory, cpu, pids } = runcStats(files);
  return {
    memoryBytes: Number(memory.usage.usage),
    memoryLimitBytes: memory.usage.limit === UNLIMITED ? undefined : Number(memory.usage.limit),
    cpuSeconds: Number(cpu.usage.total) / 1e9,
    pids: Number(pids.current),
  };
}

/** The guest kernel's clock ticks per second in /proc/stat (USER_HZ, 100 on Linux x86). */
const USER_HZ = 100;

/**
 * The whole guest's memory and CPU from its /proc/meminfo and /proc/stat (text the guest
 * wrote: read by pattern, bounded by the agent channel's frame limit, and any field that is not
 * a number leaves the figure out). Used memory is MemTotal - MemAvailable, as `free` reports it;
 * CPU time is every state but idle and iowait on the `cpu` line.
 */
export function parseSandboxGuestUse(files: Record<string, string>): SandboxGuestUse | undefined {
  const kib = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(files.meminfo ?? '');
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kib('MemTotal');
  const available = kib('MemAvailable');
  const cpuLine = /^cpu\s+([\d ]+)$/m
    .exec(files.stat ?? '')?.[1]
    ?.trim()
    .split(/\s+/)
    .map(Number);
  if (total === undefined || available === undefined || !cpuLine || cpuLine.length < 8) return undefined;
  // user nice system idle iowait irq softirq steal …: all but idle (3) and iowait (4).
  const busyTicks = [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + cpuLine[i]!, 0);
  return {
    memoryTotalBytes: total,
    memoryUsedBytes: Math.max(0, total - available),
    cpuSeconds: busyTicks / USER_HZ,
  };
}

/** The whole guest's use; absent when its agent does not answer or is older than 1.4. */
export async function sandboxGuestUse(
  agent: AgentClient,
  signal: AbortSignal,
): Promise<SandboxGuestUse | undefined> {
  const files = await agent.statsSandbox(signal).catch(() => undefined);
  return files ? parseSandboxGuestUse(files) : undefined;
}
