import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { checkSpec } from './checks.js';
import { defaultSpec } from './default-spec.js';
import type { Spec } from './spec.js';
import { checkProcessShape, checkResourcesShape, checkSpecShape } from './spec-schema.js';

/** Configurations written by the real tools (podman create, ctr oci spec, runc spec, crun spec). */
const fixture = (name: string): Spec =>
  JSON.parse(readFileSync(new URL(`../../../tests/fixtures/specs/${name}.json`, import.meta.url), 'utf8'));

/** A configuration as a hostile or careless writer sees it: any field, any value. */
// biome-ignore lint/suspicious/noExplicitAny: the tests write values of every wrong type
type AnyJson = any;

function spec(edit: (s: AnyJson) => void): Spec {
  const s = defaultSpec(['true'], { terminal: false });
  edit(s);
  return s;
}

/** The one line a bad configuration gets, checked for the form every refusal has. */
function refusal(check: () => void): string {
  try {
    check();
  } catch (err) {
    assert.ok(isHullError(err, 'ERR_CONFIG'), String(err));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    assert.ok(err.message.length < 300, `a short line, not ${err.message.length} characters`);
    return err.message;
  }
  assert.fail('the input was accepted');
}

const big = 'a'.repeat(2 ** 20);

// Issue 24, item 6: each of these passed the host's checks and booted a VM before failing.
const BAD: [string, (s: AnyJson) => void, RegExp][] = [
  [
    'memory limit -5',
    (s) => (s.linux.resources = { memory: { limit: -5 } }),
    /linux\.resources\.memory\.limit -5 is out of range: give -1 \(no limit\) or a number of bytes/,
  ],
  [
    'memory limit 2^60',
    (s) => (s.linux.resources = { memory: { limit: 2 ** 60 } }),
    /linux\.resources\.memory\.limit 1152921504606847000 is out of range/,
  ],
  [
    'memory limit "512M"',
    (s) => (s.linux.resources = { memory: { limit: '512M' } }),
    /linux\.resources\.memory\.limit "512M" must be a number, not a string/,
  ],
  [
    'memory limit 1.5',
    (s) => (s.linux.resources = { memory: { limit: 1.5 } }),
    /linux\.resources\.memory\.limit 1\.5 is out of range/,
  ],
  [
    'cpu quota -5',
    (s) => (s.linux.resources = { cpu: { quota: -5 } }),
    /linux\.resources\.cpu\.quota -5 is out of range: give microseconds from 1000, or -1 for no limit/,
  ],
  [
    'cpu quota 500 (under the kernel minimum of 1 ms)',
    (s) => (s.linux.resources = { cpu: { quota: 500 } }),
    /linux\.resources\.cpu\.quota 500 is out of range/,
  ],
  [
    'cpu period 10',
    (s) => (s.linux.resources = { cpu: { period: 10 } }),
    /linux\.resources\.cpu\.period 10 is out of range: give microseconds from 1000 to 1000000, or 0/,
  ],
  [
    'cpu period 2 s',
    (s) => (s.linux.resources = { cpu: { period: 2_000_000 } }),
    /linux\.resources\.cpu\.period 2000000 is out of range/,
  ],
  [
    'cpus "0-100000"',
    (s) => (s.linux.resources = { cpu: { cpus: '0-100000' } }),
    /linux\.resources\.cpu\.cpus "0-100000" names CPU 100000: numbers go up to 8191/,
  ],
  [
    'cpus "a-b,,-"',
    (s) => (s.linux.resources = { cpu: { cpus: 'a-b,,-' } }),
    /linux\.resources\.cpu\.cpus "a-b,,-" is not a CPU list/,
  ],
  ['cpus "3-1"', (s) => (s.linux.resources = { cpu: { cpus: '3-1' } }), /runs backwards/],
  [
    'pids -2',
    (s) => (s.linux.resources = { pids: { limit: -2 } }),
    /linux\.resources\.pids\.limit -2 is out of range/,
  ],
  [
    'uid -1',
    (s) => (s.process.user.uid = -1),
    /process\.user\.uid -1 is out of range: give an ID from 0 to 4294967294/,
  ],
  ['uid 2^32', (s) => (s.process.user.uid = 2 ** 32), /process\.user\.uid 4294967296 is out of range/],
  ['uid "0"', (s) => (s.process.user.uid = '0'), /process\.user\.uid "0" must be a number, not a string/],
  [
    'args as a string',
    (s) => (s.process.args = 'sh -c true'),
    /process\.args "sh -c true" must be a list, not a string/,
  ],
  [
    'args as numbers',
    (s) => (s.process.args = [1, 2]),
    /process\.args\[0\] 1 must be a string, not a number/,
  ],
  ['no args', (s) => (s.process.args = []), /process\.args is empty: name the program to run/],
  [
    'capabilities as a number',
    (s) => (s.process.capabilities = 5),
    /process\.capabilities 5 must be an object, not a number/,
  ],
  [
    'an unknown capability',
    (s) => (s.process.capabilities = { effective: ['CAP_FLY'] }),
    /process\.capabilities\.effective\[0\] "CAP_FLY" is not valid: use names such as CAP_NET_ADMIN/,
  ],
  [
    'a relative mount destination',
    (s) => s.mounts.push({ destination: 'data', type: 'tmpfs', source: 'tmpfs' }),
    /mounts\[\d+\]\.destination "data" must be an absolute path/,
  ],
  [
    '10,000 sysctls',
    (s) =>
      (s.linux.sysctl = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`net.x${i}`, '1']))),
    /linux\.sysctl has 10000 entries: at most 512/,
  ],
  [
    '10,000 devices',
    (s) =>
      (s.linux.devices = Array.from({ length: 10_000 }, (_, i) => ({
        path: `/dev/x${i}`,
        type: 'c',
        major: 1,
        minor: 3,
      }))),
    /linux\.devices has 10000 entries: at most 1024/,
  ],
  [
    '10,000 device rules',
    (s) => (s.linux.resources = { devices: Array.from({ length: 10_000 }, () => ({ allow: true })) }),
    /linux\.resources\.devices has 10000 entries/,
  ],
  [
    'a 1 MB environment value',
    (s) => s.process.env.push(`FOO=${big}`),
    /process\.env\[\d+\] "FOO=a{56}…" is 1048580 characters long: at most 131072 \(MAX_ARG_STRLEN\)/,
  ],
  [
    'an environment entry without =',
    (s) => s.process.env.push('FOO'),
    /process\.env\[\d+\] "FOO" must be written NAME=VALUE/,
  ],
  [
    'a 1 MB hostname',
    (s) => (s.hostname = big),
    /hostname "a{60}…" is 1048576 characters long: at most 64 \(HOST_NAME_MAX\)/,
  ],
  ['root.path 42', (s) => (s.root.path = 42), /root\.path 42 must be a string, not a number/],
  ['no root', (s) => delete s.root, /root is missing: name the root filesystem/],
  [
    'a 1 MB mount source',
    (s) => s.mounts.push({ destination: '/data', type: 'bind', source: `/${big}`, options: ['rbind'] }),
    /mounts\[\d+\]\.source "\/a{59}…" is 1048577 characters long: at most 4096 \(PATH_MAX\)/,
  ],
  [
    'a NUL in an argument',
    (s) => (s.process.args = ['a\0b']),
    /process\.args\[0\] "a\\u0000b" holds a NUL byte/,
  ],
  ['a relative cwd', (s) => (s.process.cwd = 'tmp'), /process\.cwd "tmp" must be an absolute path/],
  [
    'a huge annotation map',
    (s) => (s.annotations = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 'v']))),
    /annotations has 5000 entries: at most 4096/,
  ],
  [
    'an annotation that is a number',
    (s) => (s.annotations = { a: 1 }),
    /annotations\["a"\] 1 must be a string/,
  ],
  [
    'a root disk named by a relative path',
    (s) => (s.annotations = { 'dev.hull.rootfs.disk': 'disk.raw' }),
    /annotations\[dev\.hull\.rootfs\.disk\] "disk\.raw" must be an absolute path/,
  ],
  [
    'a hook with relative path',
    (s) => (s.hooks = { poststop: [{ path: 'x' }] }),
    /hooks\.poststop\[0\]\.path "x" must be an absolute path/,
  ],
  ['terminal "yes"', (s) => (s.process.terminal = 'yes'), /process\.terminal "yes" must be true or false/],
  ['oomScoreAdj 5000', (s) => (s.process.oomScoreAdj = 5000), /process\.oomScoreAdj 5000 is out of range/],
];

for (const [what, edit, pattern] of BAD) {
  test(`config.json with ${what} is refused in one line naming the field`, () => {
    const message = refusal(() => checkSpec(spec(edit), '/b/config.json'));
    assert.match(message, /^\/b\/config\.json: /);
    assert.match(message, pattern);
  });
}

test('a list as the whole configuration is refused', () => {
  assert.match(
    refusal(() => checkSpec([], 'config.json')),
    /^config\.json: the configuration must be an object, not a list/,
  );
  assert.match(
    refusal(() => checkSpec(null, 'config.json')),
    /must be an object, not null/,
  );
});

test('configurations written by podman, containerd, runc and crun pass', () => {
  for (const name of ['podman', 'runc', 'crun']) checkSpecShape(fixture(name), name);
  // `ctr oci spec` leaves the program out: the image's entrypoint fills it.
  const containerd = fixture('containerd');
  containerd.process!.args = ['/bin/sh'];
  checkSpec(containerd, 'containerd');
  // podman's has its resources, seccomp profile, sysctl, device and capabilities.
  const podman = fixture('podman');
  const linux = podman.linux as AnyJson;
  assert.equal(linux.resources.memory.limit, 512 * 2 ** 20);
  assert.ok(linux.seccomp.syscalls.length > 0);
  // podman writes a device's mode with its type bits (S_IFCHR | 0600).
  assert.equal(linux.devices[0].fileMode, 0o20600);
  checkSpec(podman, 'podman');
});

test("what Docker and Kubernetes (containerd's CRI) write passes", () => {
  const MiB = 2 ** 20;
  const docker = spec((s) => {
    s.linux.resources = {
      devices: [{ allow: false, access: 'rwm' }],
      memory: { limit: 512 * MiB, reservation: 0, swap: 1024 * MiB, disableOOMKiller: false },
      cpu: { shares: 0, quota: 150_000, period: 100_000, cpus: '0-1', mems: '' },
      pids: { limit: 0 },
      blockIO: { weight: 0 },
    };
    s.process.rlimits = [{ type: 'RLIMIT_NOFILE', hard: 1_048_576, soft: 1_048_576 }];
    s.process.oomScoreAdj = 0;
    s.linux.sysctl = { 'net.ipv4.ip_unprivileged_port_start': '0' };
  });
  checkSpec(docker, 'docker');
  const cri = spec((s) => {
    s.annotations = {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': 'f'.repeat(64),
      'io.kubernetes.cri.sandbox-memory': String(256 * MiB),
      'io.kubernetes.cri.sandbox-cpu-quota': '50000',
      'io.kubernetes.cri.sandbox-cpu-period': '100000',
    };
    s.linux.cgroupsPath = `kubepods-burstable-pod1234.slice:cri-containerd:${'f'.repeat(64)}`;
    s.linux.resources = {
      memory: { limit: 256 * MiB, swap: 256 * MiB },
      cpu: { shares: 51, quota: 50_000, period: 100_000 },
      pids: { limit: -1 },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
      unified: { 'memory.oom.group': '1' },
    };
    s.process.oomScoreAdj = 999;
    s.process.user.additionalGids = [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27];
    s.process.capabilities.bounding.push('CAP_NET_BIND_SERVICE');
    s.process.rlimits = [{ type: 'RLIMIT_CORE', hard: 2 ** 64 - 1, soft: 2 ** 64 - 1 }];
    s.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [
        {
          names: ['personality'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 0, value: 4294967295, op: 'SCMP_CMP_EQ' }],
        },
      ],
    };
  });
  checkSpec(cri, 'cri');
});

test("an exec's process is checked as config.json's is", () => {
  const good = { args: ['sh'], cwd: '/', user: { uid: 0, gid: 0 }, env: ['PATH=/bin'] };
  checkProcessShape(good, 'exec e1');
  assert.match(
    refusal(() => checkProcessShape({ ...good, args: 'sh' }, 'exec e1')),
    /^exec e1: process\.args "sh" must be a list/,
  );
  assert.match(
    refusal(() => checkProcessShape({ ...good, user: { uid: Number.NaN, gid: 0 } }, 'hull exec')),
    /^hull exec: process\.user\.uid NaN is out of range/,
  );
  assert.match(
    refusal(() => checkProcessShape({ ...good, cwd: undefined }, 'exec e1')),
    /process\.cwd is missing: give the working directory/,
  );
});

test('a resources update is checked as linux.resources is', () => {
  checkResourcesShape({ memory: { limit: 2 ** 30 }, cpu: { quota: 20_000, period: 100_000 } }, 'update');
  // runc's "no limit" and "the default period", which Kubernetes writes to lift a quota.
  checkResourcesShape({ cpu: { quota: -1, period: 100_000 } }, 'update');
  checkResourcesShape(
    { cpu: { quota: 0, period: 0 }, memory: { limit: -1, swap: -1 }, pids: { limit: 0 } },
    'update',
  );
  assert.match(
    refusal(() => checkResourcesShape({ memory: { limit: -5 } }, 'r.json')),
    /^r\.json: linux\.resources\.memory\.limit -5/,
  );
  assert.match(
    refusal(() => checkResourcesShape([], 'r.json')),
    /linux\.resources must be an object, not a list/,
  );
});
