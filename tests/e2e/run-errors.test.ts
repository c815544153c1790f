import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QEMU_BINARY } from '../../src/hypervisor/qemu/qemu.js';
import type { Spec } from '../../src/oci/spec.js';
import { findSystemTool } from '../../src/sys/system-tool.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import {
  assertNothingLeft,
  HULL,
  type HullResult,
  hull,
  privateDirs,
  privateImageState,
  runCommand,
} from './harness.js';

/** A failure as a user should meet it: one line saying what to fix, non-zero exit, nothing left. */
async function assertCleanFailure(r: HullResult, pattern: RegExp, root: string): Promise<void> {
  assert.notEqual(r.code, 0, 'hull exits non-zero');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0]!, /^hull: /);
  assert.match(lines[0]!, pattern);
  await assertNothingLeft(root);
}

describe('hull run: bad input', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let good: string;
  before(async () => {
    dirs = await privateDirs('run-errors');
    good = join(dirs.scratch, 'good');
    await mkdir(good);
    await makeBusyboxBundle(good, ['true']);
  });
  after(() => dirs.cleanup());

  const run = (args: string[], env?: NodeJS.ProcessEnv) =>
    hull(['--root', dirs.root, 'run', ...args], { env });

  test('a missing bundle directory', async () => {
    const r = await run(['--bundle', join(dirs.scratch, 'nowhere'), 'e1']);
    await assertCleanFailure(r, /bundle .*nowhere does not exist/, dirs.root);
  });

  test('with --log and --log-format json the error is also a log line callers can show', async () => {
    const log = join(dirs.scratch, 'hull.log');
    const r = await hull([
      '--root',
      dirs.root,
      '--log',
      log,
      '--log-format',
      'json',
      'run',
      '--bundle',
      join(dirs.scratch, 'nowhere'),
      'e0',
    ]);
    assert.notEqual(r.code, 0);
    const lines = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    const last = lines.at(-1)!;
    assert.equal(last.level, 'error');
    assert.match(last.msg!, /bundle .*nowhere does not exist/);
    assert.ok(!Number.isNaN(Date.parse(last.time!)), 'time is a timestamp');
    await assertNothingLeft(dirs.root);
  });

  test('a bundle without config.json', async () => {
    const dir = join(dirs.scratch, 'empty-bundle');
    await mkdir(dir);
    const r = await run(['--bundle', dir, 'e2']);
    await assertCleanFailure(r, /config\.json is missing/, dirs.root);
  });

  test('malformed JSON in config.json', async () => {
    const dir = join(dirs.scratch, 'bad-json');
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), '{"ociVersion": "1.0.2", "process": ');
    const r = await run(['--bundle', dir, 'e3']);
    await assertCleanFailure(r, /config\.json is not valid JSON/, dirs.root);
  });

  for (const [what, id, pattern] of [
    ['a slash', 'a/b', /invalid container ID/],
    ['dot-dot', '..', /must not contain "\.\."/],
    [
      'over 200 bytes (issue 12: 256-1024 bytes booted a VM, then failed on a path)',
      'x'.repeat(256),
      /256 bytes long: use at most 200/,
    ],
    ['a leading dash (issue 12)', '-rf', /must not start with "-"/],
  ] as const) {
    test(`an ID with ${what}`, async () => {
      // After `--`, so that an ID that looks like an option reaches the ID check.
      const r = await run(['--bundle', good, '--', id]);
      await assertCleanFailure(r, pattern, dirs.root);
    });
  }

  test('a rootfs that is a symlink to / is refused, as runc does (issue 12, finding 1)', async () => {
    const dir = join(dirs.scratch, 'symlinked-rootfs');
    await mkdir(dir);
    await makeBusyboxBundle(dir, ['true']);
    await rm(join(dir, 'rootfs'), { recursive: true });
    await symlink('/', join(dir, 'rootfs'));
    const r = await run(['--bundle', dir, 'e-symlink']);
    await assertCleanFailure(r, /invalid rootfs .*: a symlink/, dirs.root);
  });

  test('a rootfs reached through a symlinked directory is refused too', async () => {
    const dir = join(dirs.scratch, 'symlinked-parent');
    await mkdir(join(dir, 'real'), { recursive: true });
    await makeBusyboxBundle(join(dir, 'real'), ['true']);
    await symlink(join(dir, 'real', 'rootfs'), join(dir, 'link'));
    const config = JSON.parse(await readFile(join(dir, 'real', 'config.json'), 'utf8')) as {
      root: { path: string };
    };
    config.root.path = join(dir, 'link');
    await writeFile(join(dir, 'real', 'config.json'), JSON.stringify(config));
    const r = await run(['--bundle', join(dir, 'real'), 'e-symlink2']);
    await assertCleanFailure(r, /invalid rootfs .*: a symlink/, dirs.root);
  });

  test('a bind mount whose source is missing', async () => {
    const dir = join(dirs.scratch, 'bad-mount');
    await mkdir(dir);
    await makeBusyboxBundle(dir, ['true'], (spec) => {
      spec.mounts!.push({ destination: '/data', type: 'bind', source: '/no/such/dir', options: ['rbind'] });
    });
    const r = await run(['--bundle', dir, 'e4']);
    await assertCleanFailure(r, /mount source \/no\/such\/dir .*does not exist/, dirs.root);
  });

  /** The configuration's IPC entry, made to name `path`. */
  const joinIpc = (spec: Spec, path: string) => {
    spec.linux!.namespaces = spec.linux!.namespaces!.map((ns) =>
      ns.type === 'ipc' ? { type: 'ipc', path } : ns,
    );
  };

  // Issues 9 and 14: each was accepted, and the container misbehaved or crun failed later.
  for (const [index, [what, edit, pattern]] of (
    [
      [
        'no network namespace (--network host)',
        (spec: Spec) => {
          spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== 'network');
        },
        /no "network" entry.*hostNetwork.*a VM cannot share the host kernel's namespaces/,
      ],
      [
        'an unknown capability',
        (spec: Spec) => {
          spec.process!.capabilities = { bounding: ['CAP_NET_ADMINN'] };
        },
        /process.capabilities.bounding\[0\] "CAP_NET_ADMINN" is not valid: use names such as CAP_NET_ADMIN/,
      ],
      [
        'rshared propagation on a bind mount',
        (spec: Spec) => {
          spec.mounts!.push({
            destination: '/data',
            type: 'bind',
            source: '/tmp',
            options: ['rbind', 'rshared'],
          });
        },
        /"rshared" propagation .*cannot reach the host/,
      ],
      [
        'an unknown resource limit',
        (spec: Spec) => {
          spec.process!.rlimits = [{ type: 'RLIMIT_FILES', soft: 10, hard: 10 }];
        },
        /process.rlimits\[0\].type "RLIMIT_FILES" is not a resource limit/,
      ],
      [
        'a sysctl outside any namespace',
        (spec: Spec) => {
          spec.linux!.sysctl = { 'vm.overcommit_memory': '1' };
        },
        /linux.sysctl "vm.overcommit_memory" is not in a separate kernel namespace/,
      ],
      [
        "a host process's IPC namespace",
        (spec: Spec) => joinIpc(spec, `/proc/${process.pid}/ns/ipc`),
        /\(ipc\) asks to join \/proc\/\d+\/ns\/ipc, a namespace of the host kernel, which a container in a VM cannot join/,
      ],
      [
        'a network namespace path in the IPC entry',
        (spec: Spec) => joinIpc(spec, `/proc/${process.pid}/ns/net`),
        /\(ipc\) names \/proc\/\d+\/ns\/net, which is not a namespace of type ipc/,
      ],
      [
        'a namespace path that does not exist',
        (spec: Spec) => joinIpc(spec, '/proc/999999999/ns/ipc'),
        /\(ipc\) names \/proc\/999999999\/ns\/ipc, which does not exist/,
      ],
      [
        'a block device without its numbers',
        (spec: Spec) => {
          spec.linux!.devices = [{ path: '/dev/sdz', type: 'b' }];
        },
        /linux.devices\[0\] \(\/dev\/sdz\) needs major and minor numbers/,
      ],
    ] as const
  ).entries()) {
    test(`a configuration with ${what} is refused, naming the field`, async () => {
      const dir = join(dirs.scratch, `bad-${what.replace(/\W+/g, '-')}`);
      await mkdir(dir);
      await makeBusyboxBundle(dir, ['true'], edit);
      const r = await run(['--bundle', dir, `e-config-${index}`]);
      await assertCleanFailure(r, pattern, dirs.root);
    });
  }

  test('no guest image', async () => {
    const empty = join(dirs.scratch, 'empty-state');
    await mkdir(empty);
    const r = await run(['--bundle', good, 'e5'], { HULL_STATE_DIR: empty });
    await assertCleanFailure(r, /no guest image .*run `hull image build`/, dirs.root);
  });

  test('no QEMU installed', async () => {
    // hull looks for QEMU in the system directories, whatever PATH says: a host without it is
    // a mount namespace where the binary is not an executable.
    const qemu = realpathSync(findSystemTool(QEMU_BINARY)!);
    const r = await runCommand('unshare', [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind /dev/null "$0" && exec "$@"',
      qemu,
      process.execPath,
      HULL,
      '--root',
      dirs.root,
      'run',
      '--bundle',
      good,
      'e6',
    ]);
    await assertCleanFailure(
      { ...r, signal: null },
      /qemu-system-x86_64 is not installed: run `apt-get install qemu-system-x86`/,
      dirs.root,
    );
  });

  test('a VM that does not boot names the cause: a kernel panic', async () => {
    // The real image, but with an initramfs that is not one: the kernel panics and the VM ends.
    const { state } = await privateImageState(join(dirs.scratch, 'broken-initrd'), {
      'initrd.cpio': 'this is not an initramfs',
    });
    const r = await run(['--bundle', good, 'e7'], { HULL_STATE_DIR: state, HULL_ACCEL: 'tcg' });
    await assertCleanFailure(
      r,
      /the VM stopped while booting: the guest kernel panicked: .*`hull --debug --log FILE` keeps its console/,
      dirs.root,
    );
  });

  test('a VM that does not boot names the cause: what the initramfs said', async () => {
    const { state } = await privateImageState(join(dirs.scratch, 'broken-rootfs'), {
      'rootfs.erofs': 'x'.repeat(1 << 16),
    });
    const r = await run(['--bundle', good, 'e7b'], { HULL_STATE_DIR: state, HULL_ACCEL: 'tcg' });
    await assertCleanFailure(
      r,
      /the VM stopped while booting: hull-initramfs: cannot mount the root filesystem/,
      dirs.root,
    );
  });

  test('an agent that does not answer within the deadline', async () => {
    // Booted: a clone from a template can answer within 0.3 s.
    const r = await run(['--bundle', good, 'e8'], { HULL_BOOT_TIMEOUT: '0.3', HULL_TEMPLATE: 'off' });
    await assertCleanFailure(r, /agent did not answer within 0\.3s/, dirs.root);
  });

  test('an ID that is already in use', async () => {
    await mkdir(join(dirs.root, 'taken'), { recursive: true });
    const r = await run(['--bundle', good, 'taken']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^hull: container taken already exists/);
    assert.deepEqual(await import('node:fs/promises').then((fs) => fs.readdir(join(dirs.root, 'taken'))), []);
    await import('node:fs/promises').then((fs) => fs.rmdir(join(dirs.root, 'taken')));
  });
});
