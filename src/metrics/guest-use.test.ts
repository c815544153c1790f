import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSandboxGuestUse } from './guest-use.js';

const meminfo = 'MemTotal:         468552 kB\nMemFree:          365844 kB\nMemAvailable:     412892 kB\n';
const stat = 'cpu  150 5 80 9000 20 3 2 1 0 0\ncpu0 150 5 80 9000 20 3 2 1 0 0\nintr 1234\n';

test("the guest's /proc: used memory as `free` counts it, CPU time but idle and iowait", () => {
  assert.deepEqual(parseSandboxGuestUse({ meminfo, stat }), {
    memoryTotalBytes: 468552 * 1024,
    memoryUsedBytes: (468552 - 412892) * 1024,
    cpuSeconds: (150 + 5 + 80 + 3 + 2 + 1) / 100,
  });
});

test('anything else from the guest leaves the figure out instead of making one up', () => {
  assert.equal(parseSandboxGuestUse({}), undefined);
  assert.equal(parseSandboxGuestUse({ meminfo: 'MemTotal: lots kB\n', stat }), undefined);
  assert.equal(parseSandboxGuestUse({ meminfo, stat: 'cpu  1 2 3\n' }), undefined, 'a short cpu line');
  assert.equal(parseSandboxGuestUse({ meminfo, stat: 'cpu  -1 2 3 4 5 6 7 8\n' }), undefined);
});
