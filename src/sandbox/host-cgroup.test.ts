import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TCG_CACHE_MIB } from '../hypervisor/qemu/command-line.js';
import { VMM_OVERHEAD_MIB } from '../hypervisor/qemu/qemu.js';
import { weightOfShares } from '../sys/cgroup.js';
import { GUEST_BASE_MIB, hostCgroupLimits, hostCgroupPath } from './host-cgroup.js';

const MiB = 2 ** 20;

test('the cgroup path: cgroupfs as written, systemd slices expanded, none under /hull', () => {
  const at = (cgroupsPath?: string) => hostCgroupPath({ linux: { cgroupsPath } }, 'c1');
  assert.equal(at(undefined), '/hull/c1');
  assert.equal(at('/libpod_parent/libpod-abc'), '/libpod_parent/libpod-abc');
  assert.equal(at('machine.slice:libpod:abc'), '/machine.slice/libpod-abc.scope');
  assert.equal(at('system.slice:docker:abc'), '/system.slice/docker-abc.scope');
  assert.equal(
    at('kubepods-besteffort-pod12.slice:cri-containerd:abc'),
    '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope',
  );
  assert.equal(at(':libpod:abc'), '/system.slice/libpod-abc.scope');
  assert.equal(at('relative/path'), '/relative/path');
});

test('memory: the container limit plus the guest base, at most the VM, plus the VMM and TCG cache', () => {
  const vm = { memoryMiB: 512, accel: 'tcg' as const };
  const overhead = (VMM_OVERHEAD_MIB + DEFAULT_TCG_CACHE_MIB) * MiB;
  assert.equal(
    hostCgroupLimits(undefined, { ...vm, tcgCacheMiB: 256 }).memoryBytes,
    (512 + VMM_OVERHEAD_MIB + 256) * MiB,
    'a configured translation cache counts as configured',
  );
  assert.equal(
    hostCgroupLimits({ memory: { limit: 64 * MiB } }, vm).memoryBytes,
    (64 + GUEST_BASE_MIB) * MiB + overhead,
  );
  assert.equal(hostCgroupLimits({ memory: { limit: 4096 * MiB } }, vm).memoryBytes, 512 * MiB + overhead);
  assert.equal(hostCgroupLimits(undefined, vm).memoryBytes, 512 * MiB + overhead);
  assert.equal(
    hostCgroupLimits({}, { memoryMiB: 512, accel: 'kvm' }).memoryBytes,
    (512 + VMM_OVERHEAD_MIB) * MiB,
    'no translation cache under KVM',
  );
  assert.equal(
    hostCgroupLimits(undefined, { ...vm, clone: true }).memoryBytes,
    2 * 512 * MiB + overhead,
    "a clone's guest memory counts twice: its template's file's pages it fills, and its own copies",
  );
});

test('CPU: the quota plus a quarter of a period; shares as given; none without', () => {
  const vm = { memoryMiB: 512, accel: 'kvm' as const };
  assert.deepEqual(hostCgroupLimits({ cpu: { quota: 50_000, period: 100_000 } }, vm).cpu, {
    quotaUs: 75_000,
    periodUs: 100_000,
  });
  assert.deepEqual(hostCgroupLimits({ cpu: { quota: 20_000 } }, vm).cpu, {
    quotaUs: 45_000,
    periodUs: 100_000,
  });
  assert.equal(hostCgroupLimits({ cpu: { quota: -1, shares: 1024 } }, vm).cpu, undefined);
  assert.equal(hostCgroupLimits({ cpu: { shares: 1024 } }, vm).cpuShares, 1024);
});

test('cpu.shares become cpu.weight as runc converts them', () => {
  assert.equal(weightOfShares(2), 1);
  assert.equal(weightOfShares(1024), 39);
  assert.equal(weightOfShares(262_144), 10_000);
});
