import type { AgentClient } from '../agent/client.js';
import { UNLIMITED } from '../oci/cgroup-files.js';
import { runcStats } from '../oci/runc-stats.js';
import type { GuestUse } from './sandbox-metrics.js';

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
