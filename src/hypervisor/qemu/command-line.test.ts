import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmConfig } from '../hypervisor.js';
import { kernelCommandLine, qemuCommandLine, trivialBootCommandLine } from './command-line.js';

const config: VmConfig = {
  id: 'web,1',
  runDir: '/run/hull/web',
  kernel: '/img/kernel.elf',
  initrd: '/img/initrd.cpio',
  rootfs: '/img/rootfs.erofs',
  shareDir: '/run/hull/web/shared',
  vcpus: 2,
  memoryMiB: 512,
  accel: 'tcg',
  cpuModel: 'max',
  deviceDiscovery: 'acpi',
  tscKhz: 2_600_000,
};
const paths = { agentSocket: '/s/agent.sock', qmpSocket: '/s/qmp.sock', consoleLog: '/s/console.log' };

/** The value following a switch, for each time the switch appears. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('a TCG microvm with a bounded translation cache, the max CPU model and no defaults', () => {
  const args = qemuCommandLine(config, paths);
  assert.deepEqual(values(args, '-machine'), ['microvm,acpi=on,rtc=on,pcie=off,isa-serial=on']);
  assert.deepEqual(values(args, '-accel'), ['tcg,tb-size=64'], 'the measured default');
  const configured = qemuCommandLine({ ...config, tcgCacheMiB: 256 }, paths);
  assert.deepEqual(values(configured, '-accel'), ['tcg,tb-size=256'], 'the vm.tcg_cache_mib setting');
  assert.deepEqual(values(args, '-cpu'), ['max']);
  assert.deepEqual(values(args, '-smp'), ['2']);
  assert.deepEqual(values(args, '-m'), ['512M']);
  for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) assert.ok(args.includes(flag), flag);
});

test('KVM uses the host CPU and no TSC hint; a kernel without ACPI gets acpi=off', () => {
  const args = qemuCommandLine(
    { ...config, accel: 'kvm', cpuModel: 'host', deviceDiscovery: 'cmdline' },
    paths,
  );
  assert.deepEqual(values(args, '-accel'), ['kvm']);
  assert.deepEqual(values(args, '-cpu'), ['host']);
  assert.match(values(args, '-machine')[0]!, /acpi=off/);
  assert.doesNotMatch(values(args, '-append')[0]!, /tsc_early_khz/);
});

test('rootfs read-only on virtio-blk, the share on virtio-9p, agent and QMP as client sockets', () => {
  const args = qemuCommandLine(config, paths);
  assert.deepEqual(values(args, '-drive'), [
    'id=rootfs,file=/img/rootfs.erofs,format=raw,if=none,readonly=on',
  ]);
  assert.deepEqual(values(args, '-fsdev'), [
    'local,id=share,path=/run/hull/web/shared,security_model=mapped-xattr',
  ]);
  assert.deepEqual(values(args, '-device'), [
    'virtio-blk-device,drive=rootfs,serial=hull-root',
    'virtio-9p-device,fsdev=share,mount_tag=hullshare',
    'virtio-balloon-device,free-page-reporting=on',
    'virtio-serial-device,max_ports=2',
    'virtserialport,chardev=agent,name=agent.0',
  ]);
  assert.deepEqual(values(args, '-chardev'), [
    'socket,id=agent,path=/s/agent.sock,server=off',
    'socket,id=qmp,path=/s/qmp.sock,server=off',
    'file,id=console,path=/s/console.log',
  ]);
  assert.deepEqual(values(args, '-mon'), ['chardev=qmp,mode=control']);
  assert.deepEqual(values(args, '-serial'), ['chardev:console']);
});

test('commas in values are doubled, as QEMU option syntax requires', () => {
  const args = qemuCommandLine({ ...config, rootfs: '/img/a,b.erofs' }, paths);
  assert.match(values(args, '-drive')[0]!, /file=\/img\/a,,b\.erofs,/);
  assert.deepEqual(values(args, '-name'), ['hull-web,,1']);
});

test('the kernel command line is quiet, panics into a reboot, and carries the TSC rate under TCG', () => {
  const line = kernelCommandLine(config);
  for (const word of ['console=ttyS0', 'quiet', 'panic=-1', 'reboot=t', 'tsc_early_khz=2600000']) {
    assert.ok(line.split(' ').includes(word), word);
  }
  assert.ok(
    kernelCommandLine({ ...config, debug: true })
      .split(' ')
      .includes('hull.debug'),
  );
  assert.ok(
    !kernelCommandLine({ ...config, debug: true })
      .split(' ')
      .includes('quiet'),
  );
});

test('the CPU model is the configured one, under either accelerator', () => {
  assert.deepEqual(values(qemuCommandLine({ ...config, cpuModel: 'Icelake-Server' }, paths), '-cpu'), [
    'Icelake-Server',
  ]);
  assert.deepEqual(values(qemuCommandLine({ ...config, accel: 'kvm', cpuModel: 'qemu64' }, paths), '-cpu'), [
    'qemu64',
  ]);
});

test('the root disk and the snapshot disk carry serials the guest finds them by; both read-only', () => {
  const without = qemuCommandLine(config, paths);
  assert.deepEqual(
    values(without, '-device').filter((d) => d.startsWith('virtio-blk')),
    ['virtio-blk-device,drive=rootfs,serial=hull-root'],
  );
  const args = qemuCommandLine({ ...config, agentSnapshot: '/img/snapshots/k.erofs' }, paths);
  assert.deepEqual(
    values(args, '-device').filter((d) => d.startsWith('virtio-blk')),
    [
      'virtio-blk-device,drive=rootfs,serial=hull-root',
      'virtio-blk-device,drive=snapshot,serial=hull-snapshot',
    ],
  );
  assert.ok(
    values(args, '-drive').includes('id=snapshot,file=/img/snapshots/k.erofs,format=raw,if=none,readonly=on'),
  );
});

test('a template, its clones and restores are told so on the kernel command line; other VMs are not', () => {
  const words = (c: VmConfig) => kernelCommandLine(c).split(' ');
  assert.ok(!words(config).includes('hull.template'));
  for (const role of ['template', 'clone', 'restore'] as const) {
    const template = { role, memoryFd: 20, stateFd: 21 };
    assert.ok(words({ ...config, template }).includes('hull.template'), role);
    assert.ok(
      qemuCommandLine({ ...config, template }, paths).some((a) => a.split(' ').includes('hull.template')),
      `${role}: the -append QEMU is given`,
    );
  }
});

test("guest words reach the kernel command line after hull's own", () => {
  assert.match(
    kernelCommandLine({ ...config, guestArgs: ['hull.build_snapshot'] }),
    / hull\.build_snapshot$/,
  );
});

test('a network card per tap, on the fd hull-jail opened it on, with the MAC of its interface', () => {
  const args = qemuCommandLine(
    {
      ...config,
      network: {
        netns: '/run/netns/cni-1',
        nics: [
          { tap: 'tap0_hull', mac: '0a:58:0a:f4:00:05' },
          { tap: 'tap1_hull', mac: '0a:58:0a:f4:00:06' },
        ],
        vhost: false,
      },
    },
    paths,
  );
  assert.deepEqual(values(args, '-netdev'), ['tap,id=net0,fd=10,vhost=off', 'tap,id=net1,fd=11,vhost=off']);
  assert.ok(values(args, '-device').includes('virtio-net-device,netdev=net0,mac=0a:58:0a:f4:00:05'));
  assert.ok(values(args, '-device').includes('virtio-net-device,netdev=net1,mac=0a:58:0a:f4:00:06'));
  assert.deepEqual(values(qemuCommandLine(config, paths), '-netdev'), [], 'no network, no card');
});

test('the debug console: a port of its own on a socket QEMU listens on, and the guest told of it', () => {
  const without = qemuCommandLine(config, paths);
  assert.ok(!values(without, '-device').some((d) => d.includes('debug.0')));
  assert.doesNotMatch(values(without, '-append')[0]!, /hull.debug_console/);
  const args = qemuCommandLine({ ...config, debugConsole: '/s/debug/console.sock' }, paths);
  assert.ok(
    values(args, '-chardev').includes('socket,id=debug,path=/s/debug/console.sock,server=on,wait=off'),
  );
  assert.ok(values(args, '-device').includes('virtserialport,chardev=debug,name=debug.0'));
  assert.ok(values(args, '-device').includes('virtio-serial-device,max_ports=3'));
  assert.match(values(args, '-append')[0]!, /hull.debug_console/);
});

test('free page reporting takes a virtio-mmio slot only while one is left after the network cards', () => {
  const balloon = (c: VmConfig) =>
    values(qemuCommandLine(c, paths), '-device').filter((d) => d.startsWith('virtio-balloon-device'));
  const withCards = (n: number): VmConfig => ({
    ...config,
    agentSnapshot: '/img/snapshot.erofs',
    network: {
      netns: '/run/netns/n',
      nics: Array.from({ length: n }, (_, i) => ({ tap: `tap${i}`, mac: `0a:58:0a:f4:00:0${i}` })),
      vhost: false,
    },
  });
  assert.deepEqual(balloon(config), ['virtio-balloon-device,free-page-reporting=on']);
  assert.equal(
    balloon(withCards(3)).length,
    1,
    'two disks, the share, the port and three cards: seven of eight',
  );
  assert.equal(balloon(withCards(4)).length, 0, 'a fourth card takes the last slot');
});

test("a template's RAM is its held memory, mapped shared; a clone maps it private and waits for the state", () => {
  const template = qemuCommandLine(
    { ...config, template: { role: 'template', memoryFd: 7, stateFd: 8 } },
    paths,
  );
  assert.deepEqual(values(template, '-object'), [
    'memory-backend-file,id=ram,size=512M,mem-path=/proc/self/fd/20,share=on',
  ]);
  assert.match(values(template, '-machine')[0]!, /,memory-backend=ram$/);
  assert.deepEqual(values(template, '-incoming'), []);
  const clone = qemuCommandLine({ ...config, template: { role: 'clone', memoryFd: 7, stateFd: 8 } }, paths);
  assert.deepEqual(values(clone, '-object'), [
    'memory-backend-file,id=ram,size=512M,mem-path=/proc/self/fd/20,share=off',
  ]);
  assert.deepEqual(values(clone, '-incoming'), ['defer']);
  for (const args of [template, clone]) {
    assert.ok(
      !values(args, '-device').some((d) => d.startsWith('virtio-balloon-device')),
      'no free page reporting: QEMU would punch holes in the shared memory',
    );
  }
});

test("a template's network card has no backend; a clone's is on its tap", () => {
  const template = qemuCommandLine(
    { ...config, network: { netns: '', vhost: false, nics: [{ tap: '', mac: '02:68:75:6c:6c:00' }] } },
    paths,
  );
  assert.deepEqual(values(template, '-netdev'), []);
  assert.ok(values(template, '-device').includes('virtio-net-device,mac=02:68:75:6c:6c:00'));
  const clone = qemuCommandLine(
    {
      ...config,
      network: { netns: '/run/netns/x', vhost: true, nics: [{ tap: 'tap0', mac: '0a:58:00:00:00:01' }] },
    },
    paths,
  );
  assert.deepEqual(values(clone, '-netdev'), ['tap,id=net0,fd=10,vhost=on']);
  assert.ok(values(clone, '-device').includes('virtio-net-device,netdev=net0,mac=0a:58:00:00:00:01'));
});

/** The same VM as an arm64 guest (see arch.ts). */
const arm64: VmConfig = { ...config, arch: 'arm64', cpuModel: 'cortex-a72' };

test('arm64 under TCG: the virt machine with the emulated GIC, the measured CPU model, a bounded cache', () => {
  const args = qemuCommandLine(arm64, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=max']);
  assert.deepEqual(values(args, '-accel'), ['tcg,tb-size=64']);
  assert.deepEqual(values(args, '-cpu'), ['cortex-a72']);
  assert.ok(!args.includes('microvm'));
  for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) assert.ok(args.includes(flag), flag);
});

test("arm64 under KVM: the host's GIC and CPU", () => {
  const args = qemuCommandLine({ ...arm64, accel: 'kvm', cpuModel: 'host' }, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=host']);
  assert.deepEqual(values(args, '-accel'), ['kvm']);
  assert.deepEqual(values(args, '-cpu'), ['host']);
});

test('the arm64 kernel speaks on the PL011, powers off by PSCI, and gets no x86 words', () => {
  const cmdline = kernelCommandLine(arm64);
  assert.match(cmdline, /^console=ttyAMA0 /);
  assert.match(cmdline, /panic=-1/);
  for (const x86Only of ['reboot=t', 'tsc_early_khz', 'noreplace-smp', 'ttyS0']) {
    assert.ok(!cmdline.includes(x86Only), x86Only);
  }
  const trivial = trivialBootCommandLine(arm64);
  assert.match(values(trivial, '-append')[0]!, /console=ttyAMA0 .*rdinit=\/bin\/true$/);
  assert.deepEqual(values(trivial, '-machine'), ['virt,gic-version=max']);
});

test('arm64 devices are the same virtio-mmio ones, and virt has room for the balloon beside four cards', () => {
  const nics = [1, 2, 3, 4].map((n) => ({ tap: `tap${n}`, mac: `02:00:00:00:00:0${n}` }));
  const args = qemuCommandLine(
    { ...arm64, agentSnapshot: '/img/snap', network: { netns: '/run/netns/x', nics, vhost: false } },
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
  const args = qemuCommandLine({ ...arm64, template: { role: 'clone', memoryFd: 5, stateFd: 6 } }, paths);
  assert.deepEqual(values(args, '-machine'), ['virt,gic-version=max,memory-backend=ram']);
  assert.deepEqual(values(args, '-incoming'), ['defer']);
});

test('root disks: the image read-only, the writable disk direct with discards, found by their serials', () => {
  const args = qemuCommandLine(
    {
      ...config,
      rootfsDisks: { image: '/c/a,b/rootfs.erofs', writable: '/r/sb/disk.raw', writableBytes: 2 ** 30 },
    },
    paths,
  );
  const drives = values(args, '-drive');
  assert.ok(
    drives.includes('id=image,file=/c/a,,b/rootfs.erofs,format=raw,if=none,readonly=on'),
    drives.join(' '),
  );
  assert.ok(drives.includes('id=writable,file=/r/sb/disk.raw,format=raw,if=none,cache=none,discard=unmap'));
  const devices = values(args, '-device');
  assert.ok(devices.includes('virtio-blk-device,drive=image,serial=hull-image'));
  assert.ok(devices.includes('virtio-blk-device,drive=writable,serial=hull-disk'));
  assert.equal(values(qemuCommandLine(config, paths), '-drive').length, 1, 'none without them');
});

test('a VM whose root is on disks has no share device; others have the 9p share', () => {
  const disks = { image: '/c/rootfs.erofs', writable: '/r/sb/disk.raw', writableBytes: 2 ** 30 };
  const onDisks = qemuCommandLine({ ...config, rootfsDisks: disks }, paths);
  assert.deepEqual(values(onDisks, '-fsdev'), []);
  assert.ok(!values(onDisks, '-device').some((d) => d.startsWith('virtio-9p-device')));
  const shared = qemuCommandLine(config, paths);
  assert.equal(values(shared, '-fsdev').length, 1);
  assert.ok(values(shared, '-device').some((d) => d.startsWith('virtio-9p-device')));
});

test('a saved VM resumes with RAM of its own named as its template had it, loaded from its state', () => {
  const args = qemuCommandLine({ ...config, template: { role: 'restore', memoryFd: -1, stateFd: 7 } }, paths);
  assert.deepEqual(values(args, '-object'), ['memory-backend-ram,id=ram,size=512M']);
  assert.deepEqual(values(args, '-incoming'), ['defer']);
  assert.ok(values(args, '-machine')[0]!.endsWith(',memory-backend=ram'));
  // A template made from a saved VM loads it instead of booting; its memory is still shared.
  const loader = qemuCommandLine(
    { ...config, template: { role: 'template', memoryFd: 5, stateFd: 6, loadFd: 7 } },
    paths,
  );
  assert.deepEqual(values(loader, '-incoming'), ['defer']);
  assert.match(values(loader, '-object')[0]!, /^memory-backend-file,.*share=on/);
  const booted = qemuCommandLine(
    { ...config, template: { role: 'template', memoryFd: 5, stateFd: 6 } },
    paths,
  );
  assert.deepEqual(values(booted, '-incoming'), []);
});

test("a fork's writable disk is a qcow2 overlay; a sandbox's own is raw", () => {
  const disks = { image: '/img/app.erofs', writable: '/sb/disk.raw', writableBytes: 1 << 30 };
  const own = values(qemuCommandLine({ ...config, rootfsDisks: disks }, paths), '-drive');
  assert.ok(
    own.some((d) => d.startsWith('id=writable,file=/sb/disk.raw,format=raw')),
    own.join(' '),
  );
  const fork = values(
    qemuCommandLine(
      { ...config, rootfsDisks: { ...disks, writable: '/f/disk.qcow2', backing: '/s/disk.raw' } },
      paths,
    ),
    '-drive',
  );
  assert.ok(
    fork.some((d) => d.startsWith('id=writable,file=/f/disk.qcow2,format=qcow2')),
    fork.join(' '),
  );
});
