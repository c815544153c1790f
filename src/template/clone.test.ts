import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmConfig } from '../hypervisor/hypervisor.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { templateCardMac, templateConfigOf, templateKey } from './clone.js';

const sandbox: VmConfig = {
  id: 'web',
  runDir: '/run/hull/web/vm',
  kernel: '/img/kernel.elf',
  initrd: '/img/initrd.cpio',
  rootfs: '/img/rootfs.erofs',
  shareDir: '/run/hull/web/vm/shared',
  vcpus: 1,
  memoryMiB: 512,
  accel: 'tcg',
  cpuModel: 'max',
  deviceDiscovery: 'acpi',
  tscKhz: 2_600_000,
  network: { netns: '/proc/42/ns/net', vhost: true, nics: [{ tap: 'tap0', mac: '0a:58:0a:00:00:02' }] },
  hostCgroup: { path: '/kubepods/pod1', limits: { memoryBytes: 2 ** 30, pids: 1024 }, owner: 42 },
};

const keyOf = (config: VmConfig) => templateKey(templateConfigOf(config), new QemuHypervisor(), 'image1');

test('sandboxes that differ only in what is their own share a template', async () => {
  const other: VmConfig = {
    ...sandbox,
    id: 'db',
    runDir: '/run/hull/db/vm',
    shareDir: '/run/hull/db/vm/shared',
    network: { netns: '/proc/43/ns/net', vhost: false, nics: [{ tap: 'tap9', mac: '0a:58:0a:00:00:09' }] },
    hostCgroup: undefined,
  };
  assert.equal(await keyOf(sandbox), await keyOf(other));
  assert.deepEqual(templateConfigOf(sandbox).network, {
    netns: '',
    vhost: false,
    nics: [{ tap: '', mac: templateCardMac(0) }],
  });
});

test('a template per size, network card count, CPU model, image and guest command line', async () => {
  const key = await keyOf(sandbox);
  const differing: [string, VmConfig][] = [
    ['memory', { ...sandbox, memoryMiB: 1024 }],
    ['vCPUs', { ...sandbox, vcpus: 2 }],
    ['CPU model', { ...sandbox, cpuModel: 'Haswell' }],
    ['network cards', { ...sandbox, network: undefined }],
    ['debug', { ...sandbox, debug: true }],
    ['kernel', { ...sandbox, kernel: '/img2/kernel.elf' }],
  ];
  for (const [what, config] of differing) assert.notEqual(await keyOf(config), key, what);
  assert.notEqual(await templateKey(templateConfigOf(sandbox), new QemuHypervisor(), 'image2'), key, 'image');
});

test('a VM with root disks has a template of its own, shared whatever image or disk size its clones have', async () => {
  const onDisks = (image: string, writable: string, writableBytes: number): VmConfig => ({
    ...sandbox,
    rootfsDisks: { image, writable, writableBytes },
  });
  const key = await keyOf(onDisks('/c/aaa/rootfs.erofs', '/r/sb-1/disk.raw', 128 * 2 ** 20));
  assert.notEqual(key, await keyOf(sandbox), 'the disks are part of the shape');
  assert.equal(key, await keyOf(onDisks('/c/bbb/rootfs.erofs', '/r/sb-2/disk.raw', 2 ** 30)));
  assert.deepEqual(templateConfigOf(onDisks('/c/a', '/r/d', 2 ** 30)).rootfsDisks, {
    image: '',
    writable: '',
    writableBytes: 0,
  });
});
