import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuCount, guestResources } from './guest-resources.js';

test('fields with no meaning in the VM are dropped, each with a warning naming it', () => {
  const input = {
    memory: {
      limit: 100,
      kernel: 50,
      kernelTCP: 10,
      swappiness: 60,
      disableOOMKiller: true,
      useHierarchy: true,
    },
    cpu: { shares: 512, realtimeRuntime: 1000, realtimePeriod: 100_000 },
    blockIO: { weight: 500, leafWeight: 300, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }] },
    pids: { limit: 10 },
  };
  const { resources, warnings } = guestResources(input, 1);
  assert.deepEqual(resources, {
    memory: { limit: 100 },
    cpu: { shares: 512 },
    blockIO: { weight: 500 },
    pids: { limit: 10 },
  });
  assert.equal(warnings.length, 9);
  assert.ok(warnings.some((w) => w.startsWith('linux.resources.blockIO.leafWeight is ignored')));
  assert.equal(input.memory.kernel, 50, 'the input is left as it was');
});

test("a CPU set is mapped onto the VM's vCPUs, and memory nodes onto its one node", () => {
  const { resources, warnings } = guestResources({ cpu: { cpus: '4-7', mems: '1' } }, 2);
  assert.deepEqual(resources, { cpu: { cpus: '0-1', mems: '0' } });
  assert.equal(warnings.length, 2);
  const fits = guestResources({ cpu: { cpus: '0-1', mems: '0' } }, 4);
  assert.deepEqual(fits, { resources: { cpu: { cpus: '0-1', mems: '0' } }, warnings: [] });
});

test('cpu lists are counted as the kernel reads them', () => {
  assert.equal(cpuCount('0-3,8,10-11'), 7);
  assert.equal(cpuCount('5'), 1);
  assert.equal(cpuCount('2,2,3'), 2);
});

test('no resources stay no resources', () => {
  assert.deepEqual(guestResources(undefined, 1), { resources: undefined, warnings: [] });
});
