import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Spec } from '../../src/oci/spec.js';
import { networkSysctls, toGuestSpec } from './spec.js';

const hostSpec = (): Spec => ({
  ociVersion: '1.0.2',
  process: {
    user: { uid: 0, gid: 0 },
    args: ['sh'],
    cwd: '/',
    apparmorProfile: 'containers-default-0.50',
    selinuxLabel: 'system_u:system_r:container_t:s0',
  },
  root: { path: '/var/lib/containers/overlay/abc/merged', readonly: true },
  hostname: 'web',
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rw'] },
    { destination: '/etc/hosts', type: 'bind', source: '/run/x/hosts', options: ['bind', 'ro'] },
  ],
  hooks: { poststart: [{ path: '/usr/bin/true' }] },
  linux: {
    namespaces: [
      { type: 'pid' },
      { type: 'network', path: '/run/netns/cni-1234' },
      { type: 'ipc', path: '/proc/4242/ns/ipc' },
      { type: 'uts' },
      { type: 'mount' },
    ],
    cgroupsPath: 'machine.slice:libpod:abc',
    mountLabel: 'system_u:object_r:container_file_t:s0',
    resources: { memory: { limit: 1048576 }, network: { classID: 1 } },
  },
  vm: { hypervisor: { path: '/usr/bin/qemu' } },
  annotations: { 'io.kubernetes.cri.container-type': 'container' },
});

test('root and shared bind mounts move to their paths in the guest', () => {
  const guest = toGuestSpec(hostSpec(), {
    containerId: 'c1',
    rootfs: '/run/hull/shared/c1/rootfs',
    sharedMounts: new Map([
      [1, '/run/hull/shared/c1/mounts/1'],
      [2, '/run/hull/shared/c1/mounts/2'],
    ]),
  });
  assert.deepEqual(guest.root, { path: '/run/hull/shared/c1/rootfs', readonly: true });
  assert.equal(guest.mounts?.[0]?.source, 'proc');
  assert.deepEqual(guest.mounts?.[1], {
    destination: '/data',
    type: 'bind',
    source: '/run/hull/shared/c1/mounts/1',
    options: ['rbind', 'rw'],
  });
  assert.equal(guest.mounts?.[2]?.source, '/run/hull/shared/c1/mounts/2');
});

test('host-only settings are removed and the rest is kept', () => {
  const guest = toGuestSpec(hostSpec(), { containerId: 'c1', rootfs: '/r', sharedMounts: new Map() });
  assert.equal(guest.hooks, undefined, 'host hooks run on the host');
  assert.equal(guest.vm, undefined);
  assert.equal(guest.process?.apparmorProfile, undefined);
  assert.equal(guest.process?.selinuxLabel, undefined);
  assert.equal(guest.linux?.mountLabel, undefined);
  assert.deepEqual(guest.linux?.namespaces, [
    { type: 'pid' },
    { type: 'ipc' },
    { type: 'uts' },
    { type: 'mount' },
  ]);
  assert.equal(guest.linux?.cgroupsPath, '/hull/c1');
  assert.deepEqual(guest.linux?.resources, { memory: { limit: 1048576 } });
  assert.equal(guest.hostname, 'web');
  assert.deepEqual(guest.process?.args, ['sh']);
  assert.deepEqual(guest.annotations, { 'io.kubernetes.cri.container-type': 'container' });
});

test('createContainer and startContainer hooks stay: they run in the container namespaces', () => {
  const host = hostSpec();
  host.hooks = {
    createRuntime: [{ path: '/host/create-runtime' }],
    createContainer: [{ path: '/bin/create-container' }],
    startContainer: [{ path: '/bin/start-container', args: ['start-container', 'x'] }],
    poststop: [{ path: '/host/poststop' }],
  };
  const guest = toGuestSpec(host, { containerId: 'c1', rootfs: '/r', sharedMounts: new Map() });
  assert.deepEqual(guest.hooks, {
    createContainer: [{ path: '/bin/create-container' }],
    startContainer: [{ path: '/bin/start-container', args: ['start-container', 'x'] }],
  });
});

test('the host spec is left untouched', () => {
  const host = hostSpec();
  const before = structuredClone(host);
  toGuestSpec(host, { containerId: 'c1', rootfs: '/r', sharedMounts: new Map([[1, '/x']]) });
  assert.deepEqual(host, before);
});

test("in a pod, namespaces named by path become the sandbox container's in the guest", () => {
  const host = hostSpec();
  host.linux!.namespaces = [
    { type: 'pid' },
    { type: 'ipc', path: '/proc/4242/ns/ipc' },
    { type: 'uts', path: '/proc/4242/ns/uts' },
    { type: 'network', path: '/var/run/netns/cni-1' },
    { type: 'mount' },
  ];
  const guest = toGuestSpec(host, {
    containerId: 'app',
    rootfs: '/run/hull/shared/app/rootfs',
    sharedMounts: new Map(),
    sandboxPid: 57,
  });
  assert.deepEqual(guest.linux?.namespaces, [
    { type: 'pid' },
    { type: 'ipc', path: '/proc/57/ns/ipc' },
    { type: 'uts', path: '/proc/57/ns/uts' },
    { type: 'mount' },
  ]);
});

test("a new network namespace is the VM's network too: the container joins the guest's", () => {
  const host = hostSpec();
  host.linux!.namespaces = [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }];
  const guest = toGuestSpec(host, { containerId: 'c', rootfs: '/r', sharedMounts: new Map() });
  assert.deepEqual(guest.linux?.namespaces, [{ type: 'pid' }, { type: 'mount' }]);
});

test("a container without a UTS namespace keeps the VM's hostname", () => {
  const host = hostSpec();
  host.linux!.namespaces = [{ type: 'pid' }, { type: 'mount' }];
  const guest = toGuestSpec(host, { containerId: 'p', rootfs: '/r', sharedMounts: new Map() });
  assert.equal(guest.hostname, undefined);
  host.linux!.namespaces.push({ type: 'uts' });
  assert.equal(
    toGuestSpec(host, { containerId: 'p', rootfs: '/r', sharedMounts: new Map() }).hostname,
    'web',
  );
});

test("net.* sysctls are the VM network's: the agent sets them, crun gets the rest", () => {
  const host = hostSpec();
  host.linux!.sysctl = { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.msgmax': '65536' };
  const guest = toGuestSpec(host, { containerId: 'c', rootfs: '/r', sharedMounts: new Map() });
  assert.deepEqual(guest.linux?.sysctl, { 'kernel.msgmax': '65536' });
  assert.deepEqual(networkSysctls(host), [['net.ipv4.ip_unprivileged_port_start', '0']]);
});
