import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cgroupMetrics } from './metrics.js';

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
