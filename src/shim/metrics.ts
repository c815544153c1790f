import { basename } from 'node:path';
import { create, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { type Any, AnySchema } from '@bufbuild/protobuf/wkt';
import { MetricsSchema as V1Schema } from '../gen/io/containerd/cgroups/v1/metrics_pb.js';
import {
  type Metrics,
  type MetricsSchema,
  MetricsSchema as Schema,
} from '../gen/io/containerd/cgroups/v2/metrics_pb.js';
import { flatKeyed, ioStat, limit, single } from '../oci/cgroup-files.js';
import type { ShimFlags } from './flags.js';
import { cgroupV1Metrics } from './metrics-v1.js';

/**
 * The form of Metrics the shim's caller decodes from Stats: containerd's CRI plugin takes
 * cgroup v2's (and v1's); CRI-O 1.26 takes only v1's and drops anything else with "failed to
 * extract container metrics". CRI-O is known by how it starts a shim: itself as the publish
 * binary, and no events address ("-address ''"), where containerd names its socket.
 */
export type MetricsForm = 'v1' | 'v2';

export function metricsFormFor(flags: Pick<ShimFlags, 'address' | 'publishBinary'>): MetricsForm {
  return basename(flags.publishBinary) === 'crio' || flags.address === '' ? 'v1' : 'v2';
}

/** A container's cgroup files as the Stats answer, in the form the caller decodes. */
export function statsAnswer(files: Record<string, string>, form: MetricsForm): Any {
  if (form === 'v1') {
    return create(AnySchema, {
      typeUrl: V1Schema.typeName,
      value: toBinary(V1Schema, cgroupV1Metrics(files)),
    });
  }
  return create(AnySchema, { typeUrl: Schema.typeName, value: toBinary(Schema, cgroupMetrics(files)) });
}

/** io.stat as containerd's IO usage entries. */
function ioEntries(text: string | undefined): MessageInitShape<typeof MetricsSchema>['io'] {
  const get = (fields: Map<string, bigint>, key: string) => fields.get(key) ?? 0n;
  return {
    usage: ioStat(text).map(({ major, minor, fields }) => ({
      major,
      minor,
      rbytes: get(fields, 'rbytes'),
      wbytes: get(fields, 'wbytes'),
      rios: get(fields, 'rios'),
      wios: get(fields, 'wios'),
    })),
  };
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
