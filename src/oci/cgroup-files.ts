/**
 * Readers of a container's cgroup v2 files as the guest agent returns them (StatsContainer:
 * file name → content). Both the shim's containerd metrics and the command line's runc-style
 * stats are made from these.
 */

/** `key value` lines (cpu.stat, memory.stat, memory.events) as a map of numbers. */
export function flatKeyed(text: string | undefined): Map<string, bigint> {
  const values = new Map<string, bigint>();
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value && /^\d+$/.test(value)) values.set(key, BigInt(value));
  }
  return values;
}

/** A single-value file (memory.current); 0 when absent. */
export function single(text: string | undefined): bigint {
  const value = (text ?? '').trim();
  return /^\d+$/.test(value) ? BigInt(value) : 0n;
}

/** The largest value: what containerd and runc report for "max", no limit. */
export const UNLIMITED = 0xffff_ffff_ffff_ffffn;

/** A limit file (memory.max, pids.max): a number, or "max". */
export function limit(text: string | undefined): bigint {
  const value = (text ?? '').trim();
  return value === 'max' ? UNLIMITED : single(value);
}

export interface IoStatEntry {
  major: bigint;
  minor: bigint;
  /** rbytes, wbytes, rios, wios, … */
  fields: Map<string, bigint>;
}

/** io.stat lines: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …`. */
export function ioStat(text: string | undefined): IoStatEntry[] {
  const entries: IoStatEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    const numbers = device?.match(/^(\d+):(\d+)$/);
    if (!numbers) continue;
    const fields = new Map<string, bigint>();
    for (const pair of pairs) {
      const [key, value] = pair.split('=');
      if (key && value && /^\d+$/.test(value)) fields.set(key, BigInt(value));
    }
    entries.push({ major: BigInt(numbers[1]!), minor: BigInt(numbers[2]!), fields });
  }
  return entries;
}

/*
 * cgroup v1's figures, which runc's stats and containerd's v1 Metrics both carry, made from the
 * v2 files of the same meaning.
 */

const NS_PER_USEC = 1000n;

/** cpu.stat's times and throttling as cgroup v1 reports them: times in nanoseconds. */
export function cpuV1(text: string | undefined): {
  usage: { total: bigint; kernel: bigint; user: bigint };
  throttling: { periods: bigint; throttledPeriods: bigint; throttledTime: bigint };
} {
  const cpu = flatKeyed(text);
  const get = (key: string) => cpu.get(key) ?? 0n;
  return {
    usage: {
      total: get('usage_usec') * NS_PER_USEC,
      kernel: get('system_usec') * NS_PER_USEC,
      user: get('user_usec') * NS_PER_USEC,
    },
    throttling: {
      periods: get('nr_periods'),
      throttledPeriods: get('nr_throttled'),
      throttledTime: get('throttled_usec') * NS_PER_USEC,
    },
  };
}

export interface BlkioEntryV1 {
  major: bigint;
  minor: bigint;
  op: 'Read' | 'Write';
  value: bigint;
}

/** io.stat as cgroup v1 blkio entries: per device, field `read` as its Read, `write` as its Write. */
export function blkioV1(text: string | undefined, read: string, write: string): BlkioEntryV1[] {
  return ioStat(text).flatMap(({ major, minor, fields }) => [
    { major, minor, op: 'Read' as const, value: fields.get(read) ?? 0n },
    { major, minor, op: 'Write' as const, value: fields.get(write) ?? 0n },
  ]);
}
