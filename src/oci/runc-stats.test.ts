import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonWithBigints, runcStats } from './runc-stats.js';

const FILES = {
  'cpu.stat':
    'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n',
  'memory.current': '4096000\n',
  'memory.max': '134217728\n',
  'memory.stat': 'anon 1000\nfile 2000\n',
  'memory.events': 'low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n',
  'memory.swap.max': 'max\n',
  'pids.current': '2\n',
  'pids.max': 'max\n',
  'io.stat': '254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n',
};

test("a guest cgroup's files become runc's stats: nanoseconds, limits, block IO by operation", () => {
  const stats = runcStats(FILES);
  assert.deepEqual(stats.cpu.usage, { total: 1_500_000n, kernel: 500_000n, user: 1_000_000n });
  assert.deepEqual(stats.cpu.throttling, { periods: 4n, throttledPeriods: 1n, throttledTime: 20_000n });
  assert.deepEqual(stats.memory.usage, { limit: 134217728n, usage: 4096000n, max: 0n, failcnt: 3n });
  assert.equal(stats.memory.cache, 2000n);
  assert.deepEqual(stats.memory.raw, { anon: 1000n, file: 2000n });
  assert.deepEqual(stats.pids, { current: 2n, limit: 0xffff_ffff_ffff_ffffn });
  assert.deepEqual(stats.blkio.ioServiceBytesRecursive, [
    { major: 254n, minor: 0n, op: 'Read', value: 4096n },
    { major: 254n, minor: 0n, op: 'Write', value: 8192n },
  ]);
});

test('bigints are written as exact JSON numbers, as Go writes uint64', () => {
  assert.equal(
    jsonWithBigints({ limit: 18446744073709551615n, n: 1, s: 'x' }),
    '{"limit":18446744073709551615,"n":1,"s":"x"}',
  );
});
