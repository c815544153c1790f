import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processesMentioning } from '../../src/sys/processes.js';
import { SERVER_IMAGE, serverImageArchive } from '../fixtures/debian-image.js';
import { busyboxImageArchive, IMAGE, PAUSE_IMAGE, pauseImageArchive } from '../fixtures/oci-image.js';
import { type PrivatePodman, privatePodman } from '../fixtures/podman.js';
import { ACCESS_LOG_LINE, fetchFromInside, SERVER_PAGE } from '../fixtures/web-server.js';
import { assertNothingLeft, privateDirs, qemuProcessesUsing, runCommand } from './harness.js';

/** podman 4.3 with hull as a runtime, through conmon, as a user would set it up. */
/** podman's sizes ("350.2MB", "1.074GB", "512kB", decimal units) in MiB. */
function podmanMebibytes(text: string): number {
  const m = /^([\d.]+)\s*(kB|MB|GB|B)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  const bytes = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2]!] ?? NaN;
  return (Number(m[1]) * bytes) / 2 ** 20;
}

describe('podman --runtime hull', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let env: NodeJS.ProcessEnv;
  let base: string[];
  let podman: PrivatePodman['podman'];

  before(async () => {
    dirs = await privateDirs('podman');
    const d = dirs.scratch;
    ({ env, base, podman } = await privatePodman(d));
    const load = await podman('load', '-i', await busyboxImageArchive(join(d, 'image')));
    assert.equal(load.code, 0, load.stderr);
  });
  after(async () => {
    await podman('rm', '-a', '-f');
    await dirs.cleanup();
  });

  test('run: output and exit code through conmon', async () => {
    const r = await podman('run', '--rm', IMAGE, 'sh', '-c', 'echo "kernel $(uname -r)"; exit 3');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^kernel 6\.1\./);
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });

  /** podman -t needs a terminal of its own: `script` gives it one, as a user's shell would. */
  const podmanOnTerminal = async (...args: string[]) => {
    const line = ['podman', ...base, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const r = await runCommand('script', ['-qec', line, '/dev/null'], env);
    return { ...r, stdout: r.stdout.replace(/\r/g, '') };
  };

  test('run -t and exec -t get a terminal in the guest', async () => {
    const r = await podmanOnTerminal('run', '--rm', '-t', IMAGE, 'sh', '-c', 'tty; exit 7');
    assert.equal(r.code, 7, r.stdout + r.stderr);
    assert.match(r.stdout, /^\/dev\/pts\/\d+\n/);
    assert.equal((await podman('run', '-d', '--name', 'termsvc', IMAGE, 'sleep', '1000')).code, 0);
    const e = await podmanOnTerminal('exec', '-t', 'termsvc', 'sh', '-c', 'tty; exit 8');
    assert.equal(e.code, 8, e.stdout + e.stderr);
    assert.match(e.stdout, /^\/dev\/pts\/\d+\n/);
    assert.equal((await podman('rm', '-f', '-t', '1', 'termsvc')).code, 0);
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });

  test('run -d, exec, stop and rm -f', async () => {
    const started = await podman(
      'run',
      '-d',
      '--name',
      'svc',
      IMAGE,
      'sh',
      '-c',
      'trap "echo got TERM; exit 0" TERM; echo up; while true; do sleep 0.2; done',
    );
    assert.equal(started.code, 0, started.stderr);
    const exec = await podman('exec', 'svc', 'sh', '-c', 'echo from-exec; exit 5');
    assert.deepEqual([exec.code, exec.stdout], [5, 'from-exec\n']);
    const stop = await podman('stop', '-t', '20', 'svc');
    assert.equal(stop.code, 0, stop.stderr);
    const inspect = await podman('inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'svc');
    assert.equal(inspect.stdout.trim(), 'exited 0');
    assert.match((await podman('logs', 'svc')).stdout, /up\n(.|\n)*got TERM/);
    assert.equal((await podman('rm', '-f', 'svc')).code, 0);
    // rm -f of a running container
    assert.equal((await podman('run', '-d', '--name', 'busy', IMAGE, 'sleep', '1000')).code, 0);
    assert.equal((await podman('rm', '-f', '-t', '1', 'busy')).code, 0);
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });

  // Issue 28: podman checks for CRIU (>= 3.11) and runs `hull checkpoint --help` before it asks
  // hull to checkpoint; hull then refuses in one line (the container's root is on the 9p share).
  // A container with its root on disks is checkpointed: see podman-checkpoint.test.ts.
  test('container checkpoint is refused in one line and the container keeps running', async () => {
    const started = await podman('run', '-d', '--name', 'ckpt', IMAGE, 'sleep', '1000');
    assert.equal(started.code, 0, started.stderr);
    try {
      const checkpoint = await podman('container', 'checkpoint', 'ckpt');
      assert.notEqual(checkpoint.code, 0);
      assert.match(
        checkpoint.stderr,
        /QEMU cannot save a VM while 9p is mounted; a container created with the annotation dev\.hull\.rootfs=disk/,
      );
      const hullLines = checkpoint.stderr.split('\n').filter((line) => line.includes('9p is mounted'));
      assert.equal(hullLines.length, 1, checkpoint.stderr);
      const status = await podman('inspect', '--format', '{{.State.Status}}', 'ckpt');
      assert.equal(status.stdout.trim(), 'running');
      const exec = await podman('exec', 'ckpt', 'echo', 'still here');
      assert.deepEqual([exec.code, exec.stdout], [0, 'still here\n'], exec.stderr);
    } finally {
      await podman('rm', '-f', '-t', '1', 'ckpt');
    }
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });

  // Issue 13: podman stats reads the cgroup hull puts the sandbox in (issue 14).
  test('podman stats --no-stream shows the sandbox memory against its limit', async () => {
    const started = await podman('run', '-d', '--name', 'stats', '--memory', '256m', IMAGE, 'sleep', '1000');
    assert.equal(started.code, 0, started.stderr);
    try {
      const stats = await podman('stats', '--no-stream', '--format', '{{.MemUsage}}|{{.PIDs}}', 'stats');
      assert.equal(stats.code, 0, stats.stderr);
      const [memory, pids] = stats.stdout.trim().split('|');
      const [usage, limit] = memory!.split(' / ').map(podmanMebibytes);
      assert.ok(usage! > 16, `the VM's memory shows: ${memory}`);
      // podman shows the limit it was given; the usage is the sandbox's, the VM's included.
      assert.ok(Math.abs(limit! - 256) < 1, `the limit is the container's: ${memory}`);
      assert.ok(Number(pids) >= 2, `QEMU and the monitor count: ${pids}`);
    } finally {
      await podman('rm', '-f', '-t', '1', 'stats');
    }
  });

  // Issue 9: nginx exited at start (it opens /dev/stdout, which was a socket in the guest).
  test('nginx from a Debian image serves, and its /dev/stdout log reaches podman logs', async () => {
    const load = await podman('load', '-i', await serverImageArchive());
    assert.equal(load.code, 0, load.stderr);
    const started = await podman('run', '-d', '--name', 'web', SERVER_IMAGE);
    assert.equal(started.code, 0, started.stderr);
    try {
      const page = await fetchFromInside((url) => podman('exec', 'web', 'busybox', 'wget', '-q', '-O-', url));
      assert.equal(page.trim(), SERVER_PAGE);
      const chfn = await podman('exec', 'web', 'stat', '-c', '%a %U', '/usr/bin/chfn');
      assert.equal(
        chfn.stdout.trim(),
        '4755 root',
        "the image's setuid programs are setuid in its container",
      );
      const logs = await podman('logs', 'web');
      assert.match(logs.stdout, ACCESS_LOG_LINE, logs.stdout + logs.stderr);
      const state = await podman('inspect', '--format', '{{.State.Status}}', 'web');
      assert.equal(state.stdout.trim(), 'running', 'nginx keeps running');
    } finally {
      assert.equal((await podman('rm', '-f', '-t', '1', 'web')).code, 0);
    }
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });
});

/** podman pods: the infra container and every `run --pod` container of a pod in one VM. */
describe('podman pods with --runtime hull', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let podman: PrivatePodman['podman'];
  let bridge: string | undefined;

  before(async () => {
    dirs = await privateDirs('podman-pod');
    const d = dirs.scratch;
    // A pod network (podman's CNI bridge): the pod's network namespace is the VM's.
    ({ podman, bridge } = await privatePodman(d, { bridgeSubnet: '10.231.31.0/24' }));
    for (const archive of [
      await busyboxImageArchive(join(d, 'image')),
      await pauseImageArchive(join(d, 'image')),
    ]) {
      const load = await podman('load', '-i', archive);
      assert.equal(load.code, 0, load.stderr);
    }
  });
  after(async () => {
    await podman('pod', 'rm', '-a', '-f', '-t', '1');
    if (bridge) await runCommand('ip', ['link', 'del', bridge]);
    await dirs.cleanup();
  });

  test('pod create and two run -d --pod: both containers in one VM, sharing localhost and IPC; pod rm -f leaves nothing', async () => {
    const created = await podman('pod', 'create', '--name', 'pp', '--infra-image', PAUSE_IMAGE);
    assert.equal(created.code, 0, created.stderr);
    for (const name of ['a', 'b']) {
      const run = await podman('run', '-d', '--pod', 'pp', '--name', name, IMAGE, 'sleep', '1000');
      assert.equal(run.code, 0, run.stderr);
    }
    const inBoth = async (...cmd: string[]) => {
      const out: string[] = [];
      for (const name of ['a', 'b']) {
        const r = await podman('exec', name, ...cmd);
        assert.equal(r.code, 0, r.stderr);
        out.push(r.stdout);
      }
      return out;
    };
    const [bootA, bootB] = await inBoth('cat', '/proc/sys/kernel/random/boot_id');
    assert.match(bootA!, /^[0-9a-f-]{36}\n$/);
    assert.equal(bootA, bootB, 'both containers run on the same guest kernel');
    assert.notEqual(bootA, await readFile('/proc/sys/kernel/random/boot_id', 'utf8'));
    const [ipcA, ipcB] = await inBoth('stat', '-L', '-c', '%i', '/proc/self/ns/ipc');
    assert.equal(ipcA, ipcB, 'the containers share the IPC namespace');
    // The hull root podman's conmon gave hull: on the command line of a's monitor.
    const idOf = async (name: string) => (await podman('inspect', '--format', '{{.Id}}', name)).stdout.trim();
    const ids = [await idOf('a'), await idOf('b')];
    const infra = (await podman('pod', 'inspect', '--format', '{{.InfraContainerID}}', 'pp')).stdout.trim();
    const [monitor] = await processesMentioning(ids[0]!, (cmdline) => cmdline.includes('_monitor'));
    const args = (await readFile(`/proc/${monitor}/cmdline`, 'utf8')).split('\0');
    const podDirs = `${args[args.indexOf('--root') + 1]}/pod:`;
    const [qemu, ...more] = await qemuProcessesUsing(podDirs);
    assert.ok(qemu, 'the pod runs in a VM');
    assert.deepEqual(more, [], 'one VM for the pod, its infra container included');
    const serve = await podman(
      'exec',
      '-d',
      'a',
      'sh',
      '-c',
      'echo from-a > /tmp/i && httpd -f -p 127.0.0.1:8080 -h /tmp',
    );
    assert.equal(serve.code, 0, serve.stderr);
    let page = '';
    for (let i = 0; i < 50 && page !== 'from-a\n'; i++) {
      page = (await podman('exec', 'b', 'wget', '-q', '-O-', 'http://127.0.0.1:8080/i')).stdout;
    }
    assert.equal(page, 'from-a\n', "b reaches a's server on the pod's localhost");

    const removed = await podman('pod', 'rm', '-f', '-t', '1', 'pp');
    assert.equal(removed.code, 0, removed.stderr);
    const hullProcesses = async () => [
      ...(await processesMentioning(podDirs)),
      ...(await processesMentioning(ids[0]!)),
      ...(await processesMentioning(ids[1]!)),
      ...(await processesMentioning(infra)),
    ];
    let left = await hullProcesses();
    for (let i = 0; i < 100 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await hullProcesses();
    }
    assert.deepEqual(left, [], 'no VM, holder or monitor is left');
    const [rootDir] = podDirs.split('/pod:');
    const states = await runCommand('grep', [
      '-rl',
      '-e',
      ids[0]!,
      '-e',
      ids[1]!,
      '-e',
      infra,
      '--include=state.json',
      rootDir!,
    ]);
    assert.equal(states.stdout, '', 'no state directory of the pod is left');
    const leftPods = await runCommand('find', [
      rootDir!,
      '-maxdepth',
      '1',
      '-name',
      'pod:*',
      '-newer',
      dirs.scratch,
    ]);
    assert.equal(leftPods.stdout, '', "no pod VM's directory is left");
  });
});
