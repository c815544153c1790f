import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ListedTemplate } from '../../src/template/store.js';
import type { TraceFile } from '../../src/trace/boot-trace.js';
import { ARM64_BUSYBOX, arm64State, privateArm64State } from '../fixtures/arm64-image.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { busyboxImageArchive } from '../fixtures/oci-image.js';
import { privatePodman } from '../fixtures/podman.js';
import { assertNothingLeft, hull, privateDirs, processExit } from './harness.js';

/**
 * Issue 26: arm64 containers on this x86_64 host, in an arm64 VM under TCG (the whole guest is
 * arm64: no binfmt, no qemu-user). Few cases, each a distinct path: a cold boot, a clone from
 * a template, and the missing image.
 */
describe('arm64 guests', { timeout: 1_800_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let env: NodeJS.ProcessEnv;
  let n = 0;

  before(async () => {
    dirs = await privateDirs('arm64');
    await arm64State();
    env = { HULL_STATE_DIR: await privateArm64State(join(dirs.scratch, 'state')), HULL_ARCH: 'arm64' };
  });

  after(async () => {
    const listed = await hull(['template', 'list', '--format', 'json'], { env });
    await hull(['template', 'rm', '--all'], { env });
    for (const template of JSON.parse(listed.stdout || '[]') as ListedTemplate[]) {
      if (template.memory.pid) await processExit(template.memory.pid, 10_000);
    }
    await dirs.cleanup();
  });

  async function arm64Bundle(args: string[]): Promise<{ dir: string; id: string }> {
    const dir = join(dirs.scratch, `bundle-${++n}`);
    await mkdir(dir);
    await makeBusyboxBundle(dir, args, undefined, ARM64_BUSYBOX);
    return { dir, id: `arm64-${n}` };
  }

  const script = 'uname -m; read line; echo "got $line"; echo oops >&2; exit 7';

  test('an arm64 busybox booted in an arm64 VM: uname -m, stdin, stdout, stderr, exit code', async () => {
    const b = await arm64Bundle(['sh', '-c', script]);
    const r = await hull(['--root', dirs.root, 'run', '--bundle', b.dir, b.id], {
      env: { ...env, HULL_TEMPLATE: 'off' },
      input: 'hello\n',
    });
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, 'aarch64\ngot hello\n');
    assert.match(r.stderr, /^oops$/m);
    await assertNothingLeft(dirs.root);
  });

  test('arm64 sandboxes are cloned from a template (x-ignore-shared works on arm64 here)', async () => {
    const first = await arm64Bundle(['uname', '-m']);
    const made = await hull(['--root', dirs.root, 'run', '--bundle', first.dir, first.id], {
      env,
      input: null,
    });
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stdout, 'aarch64\n');
    const [template, ...others] = JSON.parse(
      (await hull(['template', 'list', '--format', 'json'], { env })).stdout,
    ) as ListedTemplate[];
    assert.equal(others.length, 0);
    assert.ok(template?.live, 'a live arm64 template');
    const trace = join(dirs.scratch, 'clone-trace.json');
    const b = await arm64Bundle(['sh', '-c', script]);
    const r = await hull(['--root', dirs.root, 'run', '--trace', trace, '--bundle', b.dir, b.id], {
      env,
      input: 'again\n',
    });
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, 'aarch64\ngot again\n');
    const phases = (JSON.parse(await readFile(trace, 'utf8')) as TraceFile).traceEvents.map((e) => e.name);
    assert.ok(phases.includes('clone wakes'), `the VM was cloned: ${phases.join(', ')}`);
    assert.ok(!phases.includes('guest kernel'), 'and did not boot');
    await assertNothingLeft(dirs.root);
  });

  test('podman --arch arm64 runs an arm64 image through --runtime hull, in an arm64 VM', async () => {
    const dir = join(dirs.scratch, 'podman');
    // Only the image tells the architecture (no HULL_ARCH): hull finds it in the program.
    const pod = await privatePodman(dir, { hullEnv: { HULL_STATE_DIR: env.HULL_STATE_DIR! } });
    const podman = pod.podman;
    const tag = 'localhost/hullbox-arm64:latest';
    const archive = await busyboxImageArchive(join(dir, 'image'), {
      busybox: ARM64_BUSYBOX,
      architecture: 'arm64',
      tag,
    });
    const load = await podman('load', '-i', archive);
    assert.equal(load.code, 0, load.stderr);
    try {
      const r = await podman('run', '--rm', '--arch', 'arm64', tag, 'sh', '-c', 'uname -m; exit 4');
      assert.equal(r.code, 4, r.stderr);
      assert.equal(r.stdout, 'aarch64\n');
    } finally {
      await podman('rm', '-a', '-f');
    }
    await assertNothingLeft(join(dir, 'hull'));
  });

  test('a containerd task through the shim with an arm64 image (ctr run --platform linux/arm64)', async () => {
    const dir = join(dirs.scratch, 'containerd');
    // containerd's shims take its environment: the state with the arm64 image, no HULL_ARCH.
    const saved = process.env.HULL_STATE_DIR;
    process.env.HULL_STATE_DIR = env.HULL_STATE_DIR;
    const containerd = await Containerd.start(dir).finally(() => {
      if (saved === undefined) delete process.env.HULL_STATE_DIR;
      else process.env.HULL_STATE_DIR = saved;
    });
    try {
      const tag = 'localhost/hullbox-arm64:latest';
      const archive = await busyboxImageArchive(join(dirs.scratch, 'podman', 'image'), {
        busybox: ARM64_BUSYBOX,
        architecture: 'arm64',
        tag,
      });
      const load = await containerd.ctr(['images', 'import', '--platform', 'linux/arm64', archive]);
      assert.equal(load.code, 0, load.stderr);
      const r = await containerd.ctr([
        'run',
        '--rm',
        '--platform',
        'linux/arm64',
        '--runtime',
        HULL_RUNTIME,
        tag,
        'arm64-task',
        'sh',
        '-c',
        'uname -m; exit 5',
      ]);
      assert.equal(r.stdout, 'aarch64\n', r.stderr);
      assert.equal(r.code, 5, r.stderr);
    } finally {
      await containerd.stop();
    }
    await assertNothingLeft(containerd.hullRoot);
  });

  test('an x86_64 and an arm64 container side by side, each VM chosen from its program', async () => {
    const { HULL_ARCH: _, ...byProgram } = env;
    const arm = await arm64Bundle(['uname', '-m']);
    const x86 = join(dirs.scratch, `bundle-${++n}`);
    await mkdir(x86);
    await makeBusyboxBundle(x86, ['uname', '-m']);
    const [a, b] = await Promise.all([
      hull(['--root', dirs.root, 'run', '--bundle', arm.dir, arm.id], {
        env: { ...byProgram, HULL_TEMPLATE: 'off' },
        input: null,
      }),
      hull(['--root', dirs.root, 'run', '--bundle', x86, `x86-${n}`], {
        env: { ...byProgram, HULL_TEMPLATE: 'off' },
        input: null,
      }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, 'aarch64\n');
    assert.equal(b.stdout, 'x86_64\n');
    await assertNothingLeft(dirs.root);
  });

  test('hull image list and hull env show each image with its architecture', async () => {
    const listed = await hull(['image', 'list'], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^[0-9a-f]{16} +arm64 +6\.1\.\S+-arm64 \(debian\) +\S+ +\*$/m);
    assert.match(listed.stdout, /^[0-9a-f]{16} +x86_64 +\S+-amd64 \(debian\) +\S+ +\*$/m);
    const described = await hull(['env'], { env });
    assert.match(described.stdout, /^guest image: +[0-9a-f]{16}, arm64 /m);
    assert.match(described.stdout, /^accelerator: +tcg \(an arm64 guest on an x86_64 host is emulated\)$/m);
    assert.match(described.stdout, /^guest CPU model: +cortex-a72$/m);
  });

  test('without an arm64 image: one line naming the build to run, nothing left', async () => {
    const empty = join(dirs.scratch, 'empty-state');
    const b = await arm64Bundle(['true']);
    const r = await hull(['--root', dirs.root, 'run', '--bundle', b.dir, b.id], {
      env: { ...env, HULL_STATE_DIR: empty },
    });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr.trim(),
      /^hull: no arm64 guest image in .*: run `hull image build --arch arm64` first$/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    await assertNothingLeft(dirs.root);
    assert.deepEqual(await readdir(join(empty, 'images')).catch(() => []), [], 'no image made or pointed at');
  });
});
