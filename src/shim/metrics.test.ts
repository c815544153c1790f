import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromBinary } from '@bufbuild/protobuf';
import { MetricsSchema as V1MetricsSchema } from '../gen/io/containerd/cgroups/v1/metrics_pb.js';
import { MetricsSchema as V2MetricsSchema } from '../gen/io/containerd/cgroups/v2/metrics_pb.js';
import { cgroupMetrics, metricsFormFor, statsAnswer } from './metrics.js';

test('cgroup v2 files become the metrics containerd reads', () => {
  const metrics = cgroupMetrics({
    'cpu.stat': 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n',
    'memory.current': '3145728\n',
    'memory.max': 'max\n',
    'memory.stat': 'anon 1048576\nfile 2097152\ninactive_file 1048576\npgfault 42\npgmajfault 1\n',
    'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n',
    'pids.current': '2\n',
    'pids.max': '64\n',
    'io.stat': '254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
  });
  assert.equal(metrics.cpu?.usageUsec, 1500n);
  assert.equal(metrics.cpu?.userUsec, 1000n);
  assert.equal(metrics.memory?.usage, 3145728n);
  assert.equal(metrics.memory?.usageLimit, 0xffff_ffff_ffff_ffffn);
  assert.equal(metrics.memory?.inactiveFile, 1048576n);
  assert.equal(metrics.memory?.anon, 1048576n);
  assert.equal(metrics.memory?.pgfault, 42n);
  assert.equal(metrics.memoryEvents?.oomKill, 1n);
  assert.equal(metrics.pids?.current, 2n);
  assert.equal(metrics.pids?.limit, 64n);
  assert.deepEqual(
    metrics.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.rios]),
    [[254n, 0n, 4096n, 1n]],
  );
});

test('missing or malformed files read as zero, never as an error', () => {
  const metrics = cgroupMetrics({ 'memory.current': 'garbage', 'cpu.stat': 'usage_usec\n' });
  assert.equal(metrics.memory?.usage, 0n);
  assert.equal(metrics.cpu?.usageUsec, 0n);
  assert.equal(metrics.pids?.current, 0n);
});

test("CRI-O's shims answer cgroup v1 Metrics, containerd's v2", () => {
  assert.equal(metricsFormFor({ address: '', publishBinary: '/usr/local/bin/crio' }), 'v1');
  assert.equal(
    metricsFormFor({
      address: '/run/containerd/containerd.sock.ttrpc',
      publishBinary: '/usr/bin/containerd',
    }),
    'v2',
  );
  const files = {
    'cpu.stat':
      'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n',
    'memory.current': '3145728\n',
    'memory.max': '8388608\n',
    'memory.stat': 'anon 1048576\nfile 2097152\ninactive_file 1048576\nfile_mapped 4096\npgfault 42\n',
    'pids.current': '2\n',
    'io.stat': '254:0 rbytes=4096 wbytes=512 rios=1 wios=2\n',
  };
  const v1 = statsAnswer(files, 'v1');
  assert.equal(v1.typeUrl, 'io.containerd.cgroups.v1.Metrics');
  const m = fromBinary(V1MetricsSchema, v1.value);
  // What CRI-O computes: CPU in ns, working set = usage - total_inactive_file.
  assert.deepEqual(
    [m.cpu?.usage?.total, m.cpu?.usage?.user, m.cpu?.usage?.kernel],
    [1_500_000n, 1_000_000n, 500_000n],
  );
  assert.deepEqual([m.cpu?.throttling?.periods, m.cpu?.throttling?.throttledTime], [4n, 7000n]);
  assert.equal(m.memory?.usage?.usage, 3145728n);
  assert.equal(m.memory?.usage?.limit, 8388608n);
  assert.equal(m.memory?.totalInactiveFile, 1048576n);
  assert.deepEqual(
    [m.memory?.rss, m.memory?.cache, m.memory?.mappedFile, m.memory?.pgFault],
    [1048576n, 2097152n, 4096n, 42n],
  );
  assert.equal(m.pids?.current, 2n);
  assert.ok(
    m.memory?.swap && m.memory.kernel && m.memory.kernelTcp,
    'every sub-message CRI-O reads is there',
  );
  assert.deepEqual(
    m.blkio?.ioServiceBytesRecursive.map((e) => [e.op, e.major, e.value]),
    [
      ['Read', 254n, 4096n],
      ['Write', 254n, 512n],
    ],
  );
  const v2 = statsAnswer(files, 'v2');
  assert.equal(v2.typeUrl, 'io.containerd.cgroups.v2.Metrics');
  assert.equal(fromBinary(V2MetricsSchema, v2.value).cpu?.usageUsec, 1500n);
});

test('an empty answer from the guest still carries every v1 sub-message', () => {
  const m = fromBinary(V1MetricsSchema, statsAnswer({}, 'v1').value);
  assert.ok(m.pids && m.cpu?.usage && m.cpu.throttling && m.memory?.usage && m.memory.swap);
  assert.ok(m.memory.kernel && m.memory.kernelTcp);
});
