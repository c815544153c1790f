import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { checkSpec, VM_NAMESPACES_ANNOTATION } from './checks.js';
import { defaultSpec } from './default-spec.js';
import type { Spec } from './spec.js';

function spec(edit: (s: Spec) => void): Spec {
  const s = defaultSpec(['true'], { terminal: false });
  edit(s);
  return s;
}

function refusal(s: Spec): string {
  try {
    checkSpec(s, 'config.json');
  } catch (err) {
    assert.ok(isHullError(err), String(err));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return err.message;
  }
  assert.fail('the configuration was accepted');
}

const without = (type: string) => (s: Spec) => {
  s.linux!.namespaces = s.linux!.namespaces!.filter((ns) => ns.type !== type);
};

test('the default configuration passes', () => {
  checkSpec(
    spec(() => {}),
    'config.json',
  );
});

for (const [type, field] of [
  ['network', 'hostNetwork'],
  ['pid', 'hostPID'],
  ['ipc', 'hostIPC'],
]) {
  test(`no ${type} namespace (${field}) is refused, naming the field and the way out`, () => {
    const message = refusal(spec(without(type!)));
    assert.match(message, new RegExp(`no "${type}" entry`));
    assert.match(message, new RegExp(field!));
    assert.match(message, new RegExp(VM_NAMESPACES_ANNOTATION));
  });
}

test("the annotation accepts the VM's namespace in place of the host's", () => {
  checkSpec(
    spec((s) => {
      without('pid')(s);
      without('ipc')(s);
      s.annotations = { [VM_NAMESPACES_ANNOTATION]: 'pid, ipc' };
    }),
    'config.json',
  );
  assert.match(
    refusal(
      spec((s) => {
        without('network')(s);
        s.annotations = { [VM_NAMESPACES_ANNOTATION]: 'pid' };
      }),
    ),
    /"network"/,
  );
});

test('no UTS namespace is kept: the VM takes the configured hostname', () => {
  checkSpec(spec(without('uts')), 'config.json');
});

test('an unknown or repeated namespace type is refused', () => {
  assert.match(
    refusal(spec((s) => s.linux!.namespaces!.push({ type: 'netwrk' }))),
    /linux.namespaces\[5\].type "netwrk"/,
  );
  assert.match(refusal(spec((s) => s.linux!.namespaces!.push({ type: 'pid' }))), /"pid" twice/);
});

test('an unknown capability is refused, naming the set and the name', () => {
  const message = refusal(
    spec((s) => {
      s.process!.capabilities = { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN', 'CAP_FLY'] };
    }),
  );
  assert.match(message, /process.capabilities.effective/);
  assert.match(message, /"CAP_FLY"/);
  checkSpec(
    spec((s) => {
      s.process!.capabilities = { bounding: ['CAP_CHECKPOINT_RESTORE', 'CAP_BPF', 'CAP_NET_ADMIN'] };
    }),
    'config.json',
  );
});

test('shared propagation is refused; slave and private are kept', () => {
  assert.match(
    refusal(
      spec((s) => {
        s.mounts!.push({ destination: '/data', type: 'bind', source: '/tmp', options: ['rbind', 'rshared'] });
      }),
    ),
    /mounts\[\d+\] \(\/data\) has "rshared" propagation/,
  );
  assert.match(
    refusal(
      spec((s) => {
        s.linux!.rootfsPropagation = 'shared';
      }),
    ),
    /linux.rootfsPropagation "shared"/,
  );
  checkSpec(
    spec((s) => {
      s.mounts!.push({ destination: '/data', type: 'bind', source: '/tmp', options: ['rbind', 'rslave'] });
      s.linux!.rootfsPropagation = 'rslave';
    }),
    'config.json',
  );
});

test('resource limits: an unknown or repeated type, or soft above hard, is refused', () => {
  const limits = (rlimits: { type: string; soft: number; hard: number }[]) =>
    spec((s) => {
      s.process!.rlimits = rlimits;
    });
  assert.match(
    refusal(limits([{ type: 'RLIMIT_NOFILES', soft: 1, hard: 1 }])),
    /process.rlimits\[0\].type "RLIMIT_NOFILES" is not a resource limit/,
  );
  assert.match(
    refusal(
      limits([
        { type: 'RLIMIT_NOFILE', soft: 1, hard: 1 },
        { type: 'RLIMIT_NOFILE', soft: 2, hard: 2 },
      ]),
    ),
    /RLIMIT_NOFILE twice/,
  );
  assert.match(refusal(limits([{ type: 'RLIMIT_CORE', soft: 10, hard: 5 }])), /soft 10 above hard 5/);
  assert.match(
    refusal(limits([{ type: 'RLIMIT_CORE', soft: -1, hard: 5 }])),
    /process.rlimits\[0\].soft -1 is out of range/,
  );
  checkSpec(
    limits([
      { type: 'RLIMIT_NOFILE', soft: 1024, hard: 1048576 },
      { type: 'RLIMIT_CORE', soft: 2 ** 64 - 1, hard: 2 ** 64 - 1 },
    ]),
    'config.json',
  );
});

test('sysctls: only those of a namespace the container has, as runc allows them', () => {
  const sysctl = (values: Record<string, string>, edit: (s: Spec) => void = () => {}) =>
    spec((s) => {
      s.linux!.sysctl = values;
      edit(s);
    });
  checkSpec(
    sysctl({
      'net.ipv4.ip_unprivileged_port_start': '0',
      'kernel.shmmax': '1000000',
      'fs.mqueue.msg_max': '20',
      'kernel.domainname': 'example.org',
    }),
    'config.json',
  );
  assert.match(
    refusal(sysctl({ 'vm.swappiness': '10' })),
    /"vm.swappiness" is not in a separate kernel namespace/,
  );
  assert.match(refusal(sysctl({ 'kernel.hostname': 'x' })), /conflicts with the "hostname" field/);
  assert.match(
    refusal(sysctl({ 'kernel.domainname': 'x' }, without('uts'))),
    /"kernel.domainname" needs the container's own uts namespace/,
  );
  // The VM's IPC namespace, accepted by the annotation, is the sandbox's own.
  checkSpec(
    sysctl({ 'kernel.sem': '250 32000 32 128' }, (s) => {
      without('ipc')(s);
      s.annotations = { [VM_NAMESPACES_ANNOTATION]: 'ipc' };
    }),
    'config.json',
  );
  assert.match(
    refusal(sysctl({ 'net.core.somaxconn': 5 as unknown as string })),
    /linux.sysctl\["net.core.somaxconn"\] 5 must be a string/,
  );
});

test('devices: a node needs an absolute path, a known type and its numbers; cgroup rules are checked', () => {
  const devices = (list: unknown[], rules?: unknown[]) =>
    spec((s) => {
      s.linux!.devices = list;
      if (rules) s.linux!.resources = { devices: rules };
    });
  checkSpec(
    devices(
      [
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 },
        { path: '/dev/myfifo', type: 'p' },
      ],
      [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
      ],
    ),
    'config.json',
  );
  assert.match(
    refusal(devices([{ path: 'dev/fuse', type: 'c', major: 10, minor: 229 }])),
    /linux.devices\[0\].path "dev\/fuse"/,
  );
  assert.match(
    refusal(devices([{ path: '/dev/../etc/x', type: 'c', major: 1, minor: 3 }])),
    /without "\.\."/,
  );
  assert.match(
    refusal(devices([{ path: '/dev/x', type: 'z', major: 1, minor: 3 }])),
    /type "z": use c, b, u/,
  );
  assert.match(refusal(devices([{ path: '/dev/x', type: 'b', major: 7 }])), /needs major and minor/);
  assert.match(
    refusal(devices([], [{ allow: true, access: 'rwx' }])),
    /access "rwx" must be made of r, w and m/,
  );
  assert.match(
    refusal(devices([], [{ allow: 'yes' }])),
    /linux.resources.devices\[0\].allow "yes" must be true or false/,
  );
  assert.match(refusal(devices([], [{ allow: true, type: 'p' }])), /type "p" must be a \(all\), c or b/);
});

test('hooks need absolute paths', () => {
  assert.match(
    refusal(
      spec((s) => {
        s.hooks = { createRuntime: [{ path: 'bin/hook' }] };
      }),
    ),
    /hooks.createRuntime\[0\].path "bin\/hook" must be an absolute path/,
  );
});
