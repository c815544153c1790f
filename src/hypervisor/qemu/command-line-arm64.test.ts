import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmConfig } from '../hypervisor.js';
import { kernelCommandLine, qemuCommandLine, trivialBootCommandLine } from './command-line.js';

/** The same VM as command-line.test.ts's, as an arm64 guest. */
const config: VmConfig = {
  arch: 'arm64',
  id: 'web',
  runDir: '/run/hull/web',
  kernel: '/img/Image',
  initrd: '/img/initrd.cpio',
  rootfs: '/img/rootfs.erofs',
  shareDir: '/run/hull/web/shared',
  vcpus: 2,
  memoryMiB: 512,
  accel: 'tcg',
  cpuModel: 'cortex-a72',
  deviceDiscovery: 'acpi',
  tscKhz: 2_600_000,
};
const paths = { agentSocket: '/s/agent.sock', qmpSocket: '/s/qmp.sock', consoleLog: '/s/console.log' };

function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('arm64 under TCG: the virt machine with the emulated GIC, the measured CPU model, a bounded cache', () => {
  const args = qemuCommandLine(config, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=max']);
  assert.deepEqual(values(args, '-accel'), ['tcg,tb-size=64']);
  assert.deepEqual(values(args, '-cpu'), ['cortex-a72']);
  assert.ok(!args.includes('microvm'));
  for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) assert.ok(args.includes(flag), flag);
});

test("arm64 under KVM: the host's GIC and CPU", () => {
  const args = qemuCommandLine({ ...config, accel: 'kvm', cpuModel: 'host' }, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=host']);
  assert.deepEqual(values(args, '-accel'), ['kvm']);
  assert.deepEqual(values(args, '-cpu'), ['host']);
});

test('the arm64 kernel speaks on the PL011, powers off by PSCI, and gets no x86 words', () => {
  const cmdline = kernelCommandLine(config);
  assert.match(cmdline, /^console=ttyAMA0 /);
  assert.match(cmdline, /panic=-1/);
  for (const x86Only of ['reboot=t', 'tsc_early_khz', 'noreplace-smp', 'ttyS0']) {
    assert.ok(!cmdline.includes(x86Only), x86Only);
  }
  const trivial = trivialBootCommandLine(config);
  assert.match(values(trivial, '-append')[0]!, /console=ttyAMA0 .*rdinit=\/bin\/true$/);
  assert.deepEqual(values(trivial, '-machine'), ['virt,gic-version=max']);
});

test('arm64 devices are the same virtio-mmio ones, and virt has room for the balloon beside four cards', () => {
  const nics = [1, 2, 3, 4].map((n) => ({ tap: `tap${n}`, mac: `02:00:00:00:00:0${n}` }));
  const args = qemuCommandLine(
    { ...config, agentSnapshot: '/img/snap', network: { netns: '/run/netns/x', nics, vhost: false } },
    paths,
  );
  const devices = values(args, '-device').map((d) => d.split(',')[0]);
  assert.deepEqual(devices, [
    'virtio-blk-device',
    'virtio-blk-device',
    'virtio-9p-device',
    'virtio-net-device',
    'virtio-net-device',
    'virtio-net-device',
    'virtio-net-device',
    'virtio-balloon-device',
    'virtio-serial-device',
    'virtserialport',
  ]);
  assert.deepEqual(values(args, '-serial'), ['chardev:console'], "the console on virt's PL011");
});

test("a template on arm64 maps its held memory as the machine's RAM", () => {
  const args = qemuCommandLine({ ...config, template: { role: 'clone', memoryFd: 5, stateFd: 6 } }, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=max,memory-backend=ram']);
  assert.deepEqual(values(args, '-incoming'), ['defer']);
});
