import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Process, Spec } from '../../src/oci/spec.js';
import { directExecArgs } from './direct-exec.js';

const PLACEMENT = { initPid: 42, cgroupDir: '/sys/fs/cgroup/hull/sb-1' };

/** A serve sandbox's container (sandbox-spec.ts) as the guest runs it. */
const container = (): Spec => ({
  ociVersion: '1.0.2',
  linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
});

const processSpec = (): Process => ({
  terminal: false,
  user: { uid: 1000, gid: 1000, additionalGids: [5, 6] },
  args: ['/bin/sh', '-c', 'echo hi'],
  env: ['PATH=/bin'],
  cwd: '/home',
  capabilities: { bounding: ['CAP_KILL', 'CAP_SYS_ADMIN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
  rlimits: [
    { type: 'RLIMIT_NOFILE', soft: 1024, hard: 65536 },
    { type: 'RLIMIT_CORE', soft: -1, hard: -1 },
  ],
  noNewPrivileges: true,
});

test("a serve command's process becomes hull-spawn's command line, capabilities as kernel bit masks", () => {
  assert.deepEqual(directExecArgs(container(), processSpec(), PLACEMENT), [
    ...['-p', '42', '-c', '/sys/fs/cgroup/hull/sb-1'],
    ...['-u', '1000', '-g', '1000', '-G', '5,6', '-m', '22', '-d', '/home'],
    // CAP_KILL is 5, CAP_SYS_ADMIN 21.
    ...['-B', '200020', '-E', '20', '-P', '20', '-I', '0', '-A', '0'],
    '-n',
    ...['-r', '7,1024,65536', '-r', '4,-,-'],
    ...['--', '/bin/sh', '-c', 'echo hi'],
  ]);
});

test('the last capability the guest knows, CAP_CHECKPOINT_RESTORE, is bit 40', () => {
  const spec = { ...processSpec(), capabilities: { bounding: ['CAP_CHECKPOINT_RESTORE'] } };
  const args = directExecArgs(container(), spec, PLACEMENT)!;
  assert.equal(args[args.indexOf('-B') + 1], (1n << 40n).toString(16));
});

test('what hull-spawn does not apply is left to crun exec', () => {
  const cases: [string, Spec, Process][] = [
    ['a terminal', container(), { ...processSpec(), terminal: true }],
    ['an AppArmor profile', container(), { ...processSpec(), apparmorProfile: 'x' }],
    ['an OOM score', container(), { ...processSpec(), oomScoreAdj: 100 }],
    ['a user name', container(), { ...processSpec(), user: { uid: 0, gid: 0, username: 'root' } }],
    ['a seccomp filter', { ...container(), linux: { ...container().linux, seccomp: {} } }, processSpec()],
    ['a personality', { ...container(), linux: { ...container().linux, personality: {} } }, processSpec()],
    ['a user namespace', { ...container(), linux: { namespaces: [{ type: 'user' }] } }, processSpec()],
    ['a time namespace', { ...container(), linux: { namespaces: [{ type: 'time' }] } }, processSpec()],
    ['an unknown capability', container(), { ...processSpec(), capabilities: { bounding: ['CAP_NOPE'] } }],
    [
      'an unknown limit',
      container(),
      { ...processSpec(), rlimits: [{ type: 'RLIMIT_NOPE', soft: 1, hard: 1 }] },
    ],
    [
      'a fractional limit',
      container(),
      { ...processSpec(), rlimits: [{ type: 'RLIMIT_CPU', soft: 1.5, hard: 2 }] },
    ],
    ['no program', container(), { ...processSpec(), args: [] }],
    ['an empty program', container(), { ...processSpec(), args: [''] }],
    ['a NUL in an argument', container(), { ...processSpec(), args: ['sh', 'a\0b'] }],
    ['a relative cwd', container(), { ...processSpec(), cwd: 'home' }],
    ['a negative uid', container(), { ...processSpec(), user: { uid: -1, gid: 0 } }],
    ['a uid past 2^32-2', container(), { ...processSpec(), user: { uid: 2 ** 32 - 1, gid: 0 } }],
    [
      '65 groups',
      container(),
      { ...processSpec(), user: { uid: 0, gid: 0, additionalGids: Array(65).fill(1) } },
    ],
    [
      '17 limits',
      container(),
      { ...processSpec(), rlimits: Array(17).fill({ type: 'RLIMIT_CPU', soft: 1, hard: 1 }) },
    ],
    ['a umask past 0777', container(), { ...processSpec(), user: { uid: 0, gid: 0, umask: 0o1000 } }],
  ];
  for (const [what, spec, proc] of cases) {
    assert.equal(directExecArgs(spec, proc, PLACEMENT), undefined, what);
  }
});

test('a umask given is passed in octal; none is 022, as crun sets it', () => {
  const spec = { ...processSpec(), user: { uid: 0, gid: 0, umask: 0o077 } };
  const args = directExecArgs(container(), spec, PLACEMENT)!;
  assert.equal(args[args.indexOf('-m') + 1], '77');
});
