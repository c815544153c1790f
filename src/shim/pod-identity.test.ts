import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { defaultMemoryMiB, defaultVcpus } from '../sandbox/runtime.js';

const DEFAULT_VCPUS = defaultVcpus();
const DEFAULT_MEMORY_MIB = defaultMemoryMiB();

import { CRI, CRIO, podDir, taskRole, vmSize } from './pod-identity.js';

test("a pod's containers belong to their sandbox; other tasks to themselves", () => {
  assert.deepEqual(
    taskRole('p1', { annotations: { [CRI.containerType]: 'sandbox', [CRI.sandboxId]: 'p1' } }),
    {
      kind: 'sandbox',
      podId: 'p1',
    },
  );
  assert.deepEqual(
    taskRole('c1', { annotations: { [CRI.containerType]: 'container', [CRI.sandboxId]: 'p1' } }),
    { kind: 'container', podId: 'p1' },
  );
  assert.deepEqual(taskRole('t1', {}), { kind: 'single', podId: 't1' });
});

test("CRI-O's pods are known by CRI-O's annotations", () => {
  const sandbox = { [CRIO.containerType]: 'sandbox', [CRIO.sandboxId]: 'p2' };
  assert.deepEqual(taskRole('p2', { annotations: sandbox }), { kind: 'sandbox', podId: 'p2' });
  assert.deepEqual(
    taskRole('c2', { annotations: { [CRIO.containerType]: 'container', [CRIO.sandboxId]: 'p2' } }),
    { kind: 'container', podId: 'p2' },
  );
});

test('one directory per containerd, namespace and pod, short enough for a socket', () => {
  const a = podDir({ address: '/run/containerd/containerd.sock', namespace: 'k8s.io' }, 'x'.repeat(64));
  const b = podDir({ address: '/run/containerd/containerd.sock', namespace: 'default' }, 'x'.repeat(64));
  const c = podDir({ address: '/tmp/other/containerd.sock', namespace: 'k8s.io' }, 'x'.repeat(64));
  assert.equal(new Set([a, b, c]).size, 3);
  assert.ok(`${a}/vm/agent.sock`.length < 100, a);
});

test('sizing hints add to the default VM size', () => {
  assert.deepEqual(vmSize({}), { vcpus: DEFAULT_VCPUS, memoryMiB: DEFAULT_MEMORY_MIB });
  assert.deepEqual(
    vmSize({
      annotations: {
        [CRI.cpuPeriod]: '100000',
        [CRI.cpuQuota]: '150000',
        [CRI.memory]: String(256 * 1024 * 1024),
      },
    }),
    { vcpus: DEFAULT_VCPUS + 2, memoryMiB: DEFAULT_MEMORY_MIB + 256 },
  );
  assert.deepEqual(vmSize({ annotations: { [CRI.memory]: '0' } }).memoryMiB, DEFAULT_MEMORY_MIB);
});

test('issue 24: a sizing hint that is not a size, or asks for a VM too large, is refused', () => {
  const refused = (annotations: Record<string, string>, pattern: RegExp) =>
    assert.throws(
      () => vmSize({ annotations }),
      (err: unknown) =>
        isHullError(err, 'ERR_CONFIG') && pattern.test(err.message) && !err.message.includes('\n'),
    );
  refused(
    { [CRI.memory]: '-1' },
    /memory hint io\.kubernetes\.cri\.sandbox-memory=-1 is not a number of bytes/,
  );
  refused({ [CRI.memory]: 'lots' }, /sandbox-memory=lots is not a number of bytes/);
  refused(
    { [CRI.memory]: String(2 ** 50) },
    /ask for a VM of \d+ vCPUs and \d+ MiB: hull starts VMs of at most 64 vCPUs and 262144 MiB/,
  );
  refused({ [CRI.cpuQuota]: String(2 ** 50), [CRI.cpuPeriod]: '100000' }, /at most 64 vCPUs/);
});
