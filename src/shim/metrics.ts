import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type Metrics,
  type MetricsSchema,
  MetricsSchema as Schema,
} from '../gen/io/containerd/cgroups/v2/metrics_pb.js';

/** `key value` lines (cpu.stat, memory.stat, memory.events) as a map of numbers. */
function flatKeyed(text: string | undefined): Map<string, bigint> {
  const values = new Map<string, bigint>();
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value && /^\d+$/.test(value)) values.set(key, BigInt(value));
  }
  return values;
}

/** A single-value file (memory.current) or a limit (memory.max: a number or "max"). */
function single(text: string | undefined): bigint {
  const value = (text ?? '').trim();
  return /^\d+$/.test(value) ? BigInt(value) : 0n;
}

/** "max" means no limit; containerd reports that as the largest value. */
function limit(text: string | undefined): bigint {
  const value = (text ?? '').trim();
  if (value === 'max') return 0xffff_ffff_ffff_ffffn;
  return single(value);
}

/** io.stat lines: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …`. */
function ioEntries(text: string | undefined): MessageInitShape<typeof MetricsSchema>['io'] {
  const usage = [];
  for (const line of (text ?? '').split('\n')) {
    const [device, ...fields] = line.trim().split(/\s+/);
    const numbers = device?.match(/^(\d+):(\d+)$/);
    if (!numbers) continue;
    const stat = new Map(fields.map((f) => f.split('=') as [string, string]));
    const get = (k: string) => (/^\d+$/.test(stat.get(k) ?? '') ? BigInt(stat.get(k)!) : 0n);
    usage.push({
      major: BigInt(numbers[1]!),
      minor: BigInt(numbers[2]!),
      rbytes: get('rbytes'),
      wbytes: get('wbytes'),
      rios: get('rios'),
      wios: get('wios'),
    });
  }
  return { usage };
}

/**
 * A container's cgroup v2 files, read in the guest, as containerd's cgroup v2 Metrics: the
 * message containerd's CRI plugin decodes for container stats (working set = usage minus
 * inactive file pages, CPU usage in microseconds).
 */
export function cgroupMetrics(files: Record<string, string>): Metrics {
  const cpu = flatKeyed(files['cpu.stat']);
  const memory = flatKeyed(files['memory.stat']);
  const events = flatKeyed(files['memory.events']);
  const get = (m: Map<string, bigint>, k: string) => m.get(k) ?? 0n;
  return create(Schema, {
    pids: { current: single(files['pids.current']), limit: limit(files['pids.max']) },
    cpu: {
      usageUsec: get(cpu, 'usage_usec'),
      userUsec: get(cpu, 'user_usec'),
      systemUsec: get(cpu, 'system_usec'),
      nrPeriods: get(cpu, 'nr_periods'),
      nrThrottled: get(cpu, 'nr_throttled'),
      throttledUsec: get(cpu, 'throttled_usec'),
    },
    memory: {
      anon: get(memory, 'anon'),
      file: get(memory, 'file'),
      kernelStack: get(memory, 'kernel_stack'),
      slab: get(memory, 'slab'),
      sock: get(memory, 'sock'),
      shmem: get(memory, 'shmem'),
      fileMapped: get(memory, 'file_mapped'),
      fileDirty: get(memory, 'file_dirty'),
      fileWriteback: get(memory, 'file_writeback'),
      anonThp: get(memory, 'anon_thp'),
      inactiveAnon: get(memory, 'inactive_anon'),
      activeAnon: get(memory, 'active_anon'),
      inactiveFile: get(memory, 'inactive_file'),
      activeFile: get(memory, 'active_file'),
      unevictable: get(memory, 'unevictable'),
      slabReclaimable: get(memory, 'slab_reclaimable'),
      slabUnreclaimable: get(memory, 'slab_unreclaimable'),
      pgfault: get(memory, 'pgfault'),
      pgmajfault: get(memory, 'pgmajfault'),
      usage: single(files['memory.current']),
      usageLimit: limit(files['memory.max']),
      swapUsage: single(files['memory.swap.current']),
      swapLimit: limit(files['memory.swap.max']),
    },
    memoryEvents: {
      low: get(events, 'low'),
      high: get(events, 'high'),
      max: get(events, 'max'),
      oom: get(events, 'oom'),
      oomKill: get(events, 'oom_kill'),
    },
    io: ioEntries(files['io.stat']),
  });
}
