import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RuntimeService } from '../../src/gen/runtime/v1/cri_pb.js';
import type { ListedTemplate } from '../../src/template/store.js';
import type { TraceFile } from '../../src/trace/boot-trace.js';
import {
  ARM64_BUSYBOX,
  arm64State,
  privateArm64State,
  unpackArm64ToolsRootfs,
} from '../fixtures/arm64-image.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { writeBridgeNetwork } from '../fixtures/cni.js';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { CriClient } from '../fixtures/cri-client.js';
import { FEATURE_STEPS, FEATURES, privilegedWithDevices } from '../fixtures/kernel-features.js';
import { busyboxImageArchive, pauseImageArchive } from '../fixtures/oci-image.js';
import { privatePodman } from '../fixtures/podman.js';
import { fetchFromHost } from '../fixtures/web-server.js';
import {
  assertNothingLeft,
  hull,
  hullKeepingOutput,
  privateDirs,
  processExit,
  qemuProcessesUsing,
  runCommand,
} from './harness.js';

/** The CNI bridge of the CRI pod, on the host. */
const CRI_BRIDGE = `hullcra${process.pid % 10000}`;

/** The host port `-p 127.0.0.1:PORT:80` publishes, apart from the other tests' (theirs are even). */
const PORT = 18_001 + (process.pid % 1000) * 2;

/** Resolves once the file holds `text`, for up to two minutes (a TCG guest of another architecture is slow). */
async function waitForText(file: string, text: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await readFile(file, 'utf8').catch(() => '')).includes(text)) {
    if (Date.now() > deadline)
      throw new Error(`no ${JSON.stringify(text)} in ${file}: ${await readFile(file, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

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
      // A booted, emulated arm64 guest takes about 4 s here; on a 2-core machine busy with the
      // rest of the suite, well over the default 60 s was seen once.
      env: { ...env, HULL_TEMPLATE: 'off', HULL_BOOT_TIMEOUT: '240' },
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

  test('the OCI lifecycle of an arm64 container: create, state, start, exec, signals it traps, delete', async () => {
    const b = await arm64Bundle([
      'sh',
      '-c',
      'trap "echo got HUP" HUP; trap "echo got TERM; exit 143" TERM; uname -m; echo started; while true; do sleep 0.1; done',
    ]);
    const h = (...args: string[]) => hull(['--root', dirs.root, ...args], { env });
    const state = async () => JSON.parse((await h('state', b.id)).stdout) as { status: string; pid: number };
    // As conmon runs create: its output a file the container writes for its whole life.
    const out = `${dirs.root}.detached.out`;
    const pidFile = join(b.dir, 'container.pid');
    const created = await hullKeepingOutput(
      dirs.root,
      ['create', '--bundle', b.dir, '--pid-file', pidFile, b.id],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    const pid = Number(await readFile(pidFile, 'utf8'));
    const exited = processExit(pid);
    exited.catch(() => {});
    const s = await state();
    assert.equal(s.status, 'created');
    assert.equal(s.pid, pid, 'state names the pid in the pid file');
    assert.equal((await h('start', b.id)).code, 0);
    assert.equal((await state()).status, 'running');
    const exec = await hull(
      ['--root', dirs.root, 'exec', b.id, 'sh', '-c', 'read x; echo "$(uname -m):$x"; exit 3'],
      {
        env,
        input: 'exec\n',
      },
    );
    assert.deepEqual([exec.code, exec.stdout], [3, 'aarch64:exec\n'], exec.stderr);
    await waitForText(out, 'started\n');
    assert.equal((await h('kill', b.id, 'HUP')).code, 0);
    await waitForText(out, 'got HUP\n');
    assert.equal((await h('kill', b.id, '15')).code, 0);
    await exited;
    assert.equal((await state()).status, 'stopped');
    assert.match(await readFile(out, 'utf8'), /^aarch64\nstarted\n(.|\n)*got HUP\n(.|\n)*got TERM\n/);
    assert.equal((await h('delete', b.id)).code, 0);
    assert.equal((await h('state', b.id)).code, 1, 'a deleted container is gone');
    await rm(out, { force: true });
    await assertNothingLeft(dirs.root);
  });

  test("a privileged arm64 container has the arm64 guest kernel's features: bridge, veth, iptables, nftables, overlay, tun, loop, namespaces, cgroups", async () => {
    const dir = join(dirs.scratch, `bundle-${++n}`);
    await mkdir(dir);
    // The root filesystem is replaced by Debian's arm64 tools.
    await makeBusyboxBundle(dir, ['/bin/sh', '/features.sh'], privilegedWithDevices, ARM64_BUSYBOX);
    const rootfs = join(dir, 'rootfs');
    await rm(rootfs, { recursive: true });
    await unpackArm64ToolsRootfs(rootfs);
    await writeFile(join(rootfs, 'features.sh'), `uname -m; uname -r\n${FEATURES}`);
    const r = await hull(['--root', dirs.root, 'run', '-b', dir, `arm64-${n}`], { input: null, env });
    assert.equal(r.code, 0, r.stderr);
    const [machine, release] = r.stdout.split('\n');
    assert.equal(machine, 'aarch64');
    assert.match(release!, /-arm64$/, r.stdout);
    for (const step of FEATURE_STEPS) assert.match(r.stdout, new RegExp(`^ok ${step}$`, 'm'), r.stdout);
    await assertNothingLeft(dirs.root);
  });

  test('podman --arch arm64 runs an arm64 image through --runtime hull, in an arm64 VM, and publishes its port', async () => {
    const dir = join(dirs.scratch, 'podman');
    // Only the image tells the architecture (no HULL_ARCH): hull finds it in the program.
    const pod = await privatePodman(dir, {
      hullEnv: { HULL_STATE_DIR: env.HULL_STATE_DIR! },
      bridgeSubnet: '10.231.32.0/24',
    });
    const podman = pod.podman;
    const tag = 'localhost/hullbox-arm64:latest';
    const archive = await busyboxImageArchive(join(dir, 'image'), {
      busybox: ARM64_BUSYBOX,
      architecture: 'arm64',
      tag,
    });
    const load = await podman('load', '-i', archive);
    assert.equal(load.code, 0, load.stderr);
    // A network of the test's own (its own bridge), so nothing is shared with other tests.
    const bridge = `hullarm${process.pid % 10000}`;
    const network = await podman('network', 'create', '--subnet', '10.231.33.0/24', 'arm64net');
    assert.equal(network.code, 0, network.stderr);
    // podman 4.3 names the bridge itself (cni-podmanN); the test's own name instead.
    const conflist = join(dir, 'cni', 'arm64net.conflist');
    await writeFile(conflist, (await readFile(conflist, 'utf8')).replace(/"cni-podman\d+"/, `"${bridge}"`));
    try {
      const r = await podman(
        'run',
        '--rm',
        '--network',
        'none',
        '--arch',
        'arm64',
        tag,
        'sh',
        '-c',
        'uname -m; exit 4',
      );
      assert.equal(r.code, 4, r.stderr);
      assert.equal(r.stdout, 'aarch64\n');
      const web = await podman(
        'run',
        '-d',
        '--name',
        'web',
        '--hostname',
        'arm64-web',
        '--network',
        'arm64net',
        '-p',
        `127.0.0.1:${PORT}:80`,
        tag,
        'sh',
        '-c',
        'mkdir -p /www && echo "$(hostname) $(uname -m)" > /www/index.html && exec httpd -f -p 80 -h /www',
      );
      assert.equal(web.code, 0, web.stderr);
      assert.equal(await fetchFromHost(`http://127.0.0.1:${PORT}/`), 'arm64-web aarch64\n');
    } finally {
      await podman('rm', '-a', '-f', '-t', '1');
      await podman('network', 'rm', '-f', 'arm64net');
      await runCommand('ip', ['link', 'del', bridge]);
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

  test('a Kubernetes pod of arm64 containers through the CRI: RuntimeClass handler hull-arm64, whose configuration sets vm.arch', async () => {
    const dir = join(dirs.scratch, 'cri');
    // As a Kata user configures a handler: the runtime's options name its configuration file.
    const config = join(dirs.scratch, 'hull-arm64.toml');
    await writeFile(config, `state_dir = "${env.HULL_STATE_DIR}"\n[vm]\narch = "arm64"\n`);
    await writeBridgeNetwork(join(dir, 'cni', 'net.d'), join(dirs.scratch, 'cni-leases'), {
      bridge: CRI_BRIDGE,
      subnet: '10.231.34.0/24',
    });
    const containerd = await Containerd.start(dir, {
      extraConfig: [
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull-arm64]',
        `  runtime_type = "${HULL_RUNTIME}"`,
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull-arm64.options]',
        `  ConfigPath = "${config}"`,
      ].join('\n'),
    });
    const cri = new CriClient(containerd.socket);
    try {
      const images = join(dirs.scratch, 'cri-images');
      // The pause image is the host's (x86_64), as containerd pulls it; the app's is arm64.
      const tag = 'localhost/hullbox-arm64:latest';
      for (const [archive, platform] of [
        [await pauseImageArchive(images), 'linux/amd64'],
        [
          await busyboxImageArchive(join(images, 'arm64'), {
            busybox: ARM64_BUSYBOX,
            architecture: 'arm64',
            tag,
          }),
          'linux/arm64',
        ],
      ] as const) {
        const load = await containerd.ctr(['images', 'import', '--platform', platform, archive], 'k8s.io');
        assert.equal(load.code, 0, load.stderr);
      }
      const sandboxConfig = {
        metadata: { name: 'arm64-pod', uid: 'arm64-pod-uid', namespace: 'default' },
        hostname: 'arm64-pod',
        logDirectory: join(dirs.scratch, 'pod-logs'),
        linux: {},
      };
      await mkdir(sandboxConfig.logDirectory, { recursive: true });
      const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
        config: sandboxConfig,
        runtimeHandler: 'hull-arm64',
      });
      const { containerId } = await cri.call(RuntimeService.method.createContainer, {
        podSandboxId,
        config: {
          metadata: { name: 'app' },
          image: { image: tag },
          command: ['sleep', '1000'],
          logPath: 'app.log',
        },
        sandboxConfig,
      });
      await cri.call(RuntimeService.method.startContainer, { containerId });
      const r = await cri.call(RuntimeService.method.execSync, {
        containerId,
        cmd: ['uname', '-m'],
        timeout: 60n,
      });
      assert.equal(Buffer.from(r.stdout).toString(), 'aarch64\n', Buffer.from(r.stderr).toString());
      const [qemu, ...more] = await qemuProcessesUsing(containerd.hullRoot);
      assert.deepEqual(more, [], 'one VM for the pod');
      assert.match(await readFile(`/proc/${qemu}/cmdline`, 'utf8'), /qemu-system-aarch64/);
      await cri.call(RuntimeService.method.stopPodSandbox, { podSandboxId });
      await cri.call(RuntimeService.method.removePodSandbox, { podSandboxId });
    } finally {
      cri.close();
      await containerd.stop();
      await runCommand('ip', ['link', 'del', CRI_BRIDGE]);
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
    assert.match(
      described.stdout,
      /^architectures: +host x86_64; images: x86_64 [0-9a-f]{16} \(\S+-amd64\), arm64 [0-9a-f]{16} \(\S+-arm64\)$/m,
    );
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
