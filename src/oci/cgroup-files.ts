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
