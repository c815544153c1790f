import { type BlkioEntryV1, blkioV1, cpuV1, flatKeyed, limit, single } from './cgroup-files.js';

/**
 * A container's cgroup v2 files (read in the guest) as the `data` of runc's stats event, the
 * shape `runc events --stats` prints and clients decode (containerd's go-runc Stats): CPU
 * times in nanoseconds, memory with its limit, pids, block IO by device, raw memory.stat.
 */
export interface RuncStats {
  cpu: {
    usage: { total: bigint; percpu?: bigint[]; kernel: bigint; user: bigint };
    throttling: { periods: bigint; throttledPeriods: bigint; throttledTime: bigint };
  };
  memory: {
    cache: bigint;
    usage: MemoryEntry;
    swap: MemoryEntry;
    kernel: MemoryEntry;
    kernelTCP: MemoryEntry;
    raw: Record<string, bigint>;
  };
  pids: { current: bigint; limit: bigint };
  blkio: {
    ioServiceBytesRecursive: BlkioEntryV1[];
    ioServicedRecursive: BlkioEntryV1[];
  };
  hugetlb: Record<string, never>;
}

interface MemoryEntry {
  limit: bigint;
  usage: bigint;
  max: bigint;
  failcnt: bigint;
}

export function runcStats(files: Record<string, string>): RuncStats {
  const memory = flatKeyed(files['memory.stat']);
  const events = flatKeyed(files['memory.events']);
  const get = (m: Map<string, bigint>, k: string) => m.get(k) ?? 0n;
  const none = { limit: 0n, usage: 0n, max: 0n, failcnt: 0n };
  return {
    cpu: cpuV1(files['cpu.stat']),
    memory: {
      cache: get(memory, 'file'),
      usage: {
        limit: limit(files['memory.max']),
        usage: single(files['memory.current']),
        max: single(files['memory.peak']),
        failcnt: get(events, 'max'),
      },
      swap: {
        limit: limit(files['memory.swap.max']),
        usage: single(files['memory.swap.current']),
        max: 0n,
        failcnt: 0n,
      },
      kernel: none,
      kernelTCP: none,
      raw: Object.fromEntries(memory),
    },
    pids: { current: single(files['pids.current']), limit: limit(files['pids.max']) },
    blkio: {
      ioServiceBytesRecursive: blkioV1(files['io.stat'], 'rbytes', 'wbytes'),
      ioServicedRecursive: blkioV1(files['io.stat'], 'rios', 'wios'),
    },
    hugetlb: {},
  };
}

/**
 * JSON with every bigint written as an exact number, as Go writes uint64 (JSON.stringify
 * refuses bigints, and a number past 2^53 would lose digits).
 */
export function jsonWithBigints(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? `\u0000${v}\u0000` : v,
  ).replace(/"\\u0000(\d+)\\u0000"/g, '$1');
}
