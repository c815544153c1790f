import { create } from '@bufbuild/protobuf';
import { type Metrics, MetricsSchema } from '../gen/io/containerd/cgroups/v1/metrics_pb.js';
import { blkioV1, cpuV1, flatKeyed, limit, single } from '../oci/cgroup-files.js';

/**
 * A container's cgroup v2 files, read in the guest, as containerd's cgroup v1 Metrics: what
 * CRI-O 1.26 decodes from a vm runtime (it takes no other form). Each v1 figure is the v2 one
 * of the same meaning (rss = anon, cache = file, CPU times in nanoseconds); a v2 cgroup's
 * figures already count its children, so the hierarchical (total_*) ones are the same.
 * Every sub-message CRI-O reads is present, zero where the guest gave nothing.
 */
export function cgroupV1Metrics(files: Record<string, string>): Metrics {
  const memory = flatKeyed(files['memory.stat']);
  const events = flatKeyed(files['memory.events']);
  const get = (m: Map<string, bigint>, k: string) => m.get(k) ?? 0n;
  const memoryLimit = limit(files['memory.max']);
  const swapLimit = limit(files['memory.swap.max']);
  const pages = {
    cache: get(memory, 'file'),
    rss: get(memory, 'anon'),
    rssHuge: get(memory, 'anon_thp'),
    mappedFile: get(memory, 'file_mapped'),
    dirty: get(memory, 'file_dirty'),
    writeback: get(memory, 'file_writeback'),
    pgFault: get(memory, 'pgfault'),
    pgMajFault: get(memory, 'pgmajfault'),
    inactiveAnon: get(memory, 'inactive_anon'),
    activeAnon: get(memory, 'active_anon'),
    inactiveFile: get(memory, 'inactive_file'),
    activeFile: get(memory, 'active_file'),
    unevictable: get(memory, 'unevictable'),
  };
  return create(MetricsSchema, {
    pids: { current: single(files['pids.current']), limit: limit(files['pids.max']) },
    cpu: cpuV1(files['cpu.stat']),
    memory: {
      ...pages,
      hierarchicalMemoryLimit: memoryLimit,
      hierarchicalSwapLimit: swapLimit,
      totalCache: pages.cache,
      totalRss: pages.rss,
      totalRssHuge: pages.rssHuge,
      totalMappedFile: pages.mappedFile,
      totalDirty: pages.dirty,
      totalWriteback: pages.writeback,
      totalPgFault: pages.pgFault,
      totalPgMajFault: pages.pgMajFault,
      totalInactiveAnon: pages.inactiveAnon,
      totalActiveAnon: pages.activeAnon,
      totalInactiveFile: pages.inactiveFile,
      totalActiveFile: pages.activeFile,
      totalUnevictable: pages.unevictable,
      usage: {
        usage: single(files['memory.current']),
        limit: memoryLimit,
        max: single(files['memory.peak']),
        failcnt: get(events, 'max'),
      },
      swap: { usage: single(files['memory.swap.current']), limit: swapLimit },
      kernel: { usage: memory.get('kernel') ?? get(memory, 'kernel_stack') + get(memory, 'slab') },
      kernelTcp: { usage: get(memory, 'sock') },
    },
    memoryOomControl: { oomKill: get(events, 'oom_kill') },
    blkio: {
      ioServiceBytesRecursive: blkioV1(files['io.stat'], 'rbytes', 'wbytes'),
      ioServicedRecursive: blkioV1(files['io.stat'], 'rios', 'wios'),
    },
  });
}
