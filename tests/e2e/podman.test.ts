import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SERVER_IMAGE, serverImageArchive } from '../fixtures/debian-image.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { type PrivatePodman, privatePodman } from '../fixtures/podman.js';
import { ACCESS_LOG_LINE, fetchFromInside, SERVER_PAGE } from '../fixtures/web-server.js';
import { assertNothingLeft, privateDirs, runCommand } from './harness.js';

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
