import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SERVER_IMAGE, serverImageArchive } from '../fixtures/debian-image.js';
import { Dockerd } from '../fixtures/dockerd.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { ACCESS_LOG_LINE, fetchFromInside, SERVER_PAGE } from '../fixtures/web-server.js';
import { assertNothingLeft, privateDirs } from './harness.js';

/** Docker's sizes ("350.2MiB", "1.1GiB", "512KiB") in MiB. */
export function mebibytes(text: string): number {
  const m = /^([\d.]+)\s*([KMG]i?B|B)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  const unit =
    { B: 1 / 2 ** 20, KiB: 1 / 1024, KB: 1 / 1024, MiB: 1, MB: 1, GiB: 1024, GB: 1024 }[m[2]!] ?? NaN;
  return Number(m[1]) * unit;
}

/** Docker 20.10 with hull added as a runtime: dockerd → containerd-shim-runc-v2 → hull. */
describe('docker --runtime hull', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let dockerd: Dockerd;
  let runtimeRoot: string;

  const docker = (...args: string[]) => dockerd.docker(...args);

  before(async () => {
    dirs = await privateDirs('docker');
    dockerd = await Dockerd.start(join(dirs.scratch, 'docker'));
    runtimeRoot = dockerd.runtimeRoot;
    const load = await docker('load', '-i', await busyboxImageArchive(join(dirs.scratch, 'image')));
    assert.equal(load.code, 0, load.stderr);
  });
  after(async () => {
    if (dockerd) {
      await docker('rm', '-f', 'svc');
      await dockerd.stop();
    }
    await dirs.cleanup();
  });

  test('run: output and exit code', async () => {
    const r = await docker(
      'run',
      '--rm',
      '--runtime',
      'hull',
      IMAGE,
      'sh',
      '-c',
      'echo "kernel $(uname -r)"; exit 4',
    );
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stdout, /^kernel 6\.1\./);
    await assertNothingLeft(runtimeRoot);
  });

  test('run -d, exec and stop', async () => {
    const started = await docker(
      'run',
      '-d',
      '--name',
      'svc',
      '--runtime',
      'hull',
      IMAGE,
      'sh',
      '-c',
      'trap "echo got TERM; exit 0" TERM; echo up; while true; do sleep 0.2; done',
    );
    assert.equal(started.code, 0, started.stderr);
    const exec = await docker('exec', 'svc', 'sh', '-c', 'echo from-exec; exit 6');
    assert.deepEqual([exec.code, exec.stdout], [6, 'from-exec\n']);
    assert.equal((await docker('stop', '-t', '20', 'svc')).code, 0);
    const inspect = await docker('inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'svc');
    assert.equal(inspect.stdout.trim(), 'exited 0');
    assert.match((await docker('logs', 'svc')).stdout, /up\n(.|\n)*got TERM/);
    assert.equal((await docker('rm', 'svc')).code, 0);
    await assertNothingLeft(runtimeRoot);
  });

  // Issue 13: `docker stats` failed; it reads the cgroup hull puts the sandbox in (issue 14).
  test('docker stats --no-stream shows the sandbox memory against its limit', async () => {
    const started = await docker(
      'run',
      '-d',
      '--name',
      'stats',
      '--runtime',
      'hull',
      '--memory',
      '256m',
      IMAGE,
      'sleep',
      '1000',
    );
    assert.equal(started.code, 0, started.stderr);
    try {
      const stats = await docker('stats', '--no-stream', '--format', '{{.MemUsage}}|{{.PIDs}}', 'stats');
      assert.equal(stats.code, 0, stats.stderr);
      const [memory, pids] = stats.stdout.trim().split('|');
      const [usage, limit] = memory!.split(' / ').map(mebibytes);
      assert.ok(usage! > 16, `the VM's memory shows: ${memory}`);
      assert.ok(limit! > 256 && limit! < 2048, `the limit is the container's plus the VM's: ${memory}`);
      assert.ok(Number(pids) >= 2, `QEMU and the monitor count: ${pids}`);
    } finally {
      await docker('rm', '-f', 'stats');
    }
  });

  // Issue 9: servers that log to /dev/stdout (nginx) or stderr (busybox httpd) under docker.
  test('nginx and busybox httpd from a Debian image serve, and docker logs has their lines', async () => {
    const load = await docker('load', '-i', await serverImageArchive());
    assert.equal(load.code, 0, load.stderr);
    const nginx = await docker('run', '-d', '--name', 'web', '--runtime', 'hull', SERVER_IMAGE);
    assert.equal(nginx.code, 0, nginx.stderr);
    const httpd = await docker(
      'run',
      '-d',
      '--name',
      'httpd',
      '--runtime',
      'hull',
      SERVER_IMAGE,
      'busybox',
      'httpd',
      '-f',
      '-vv',
      '-p',
      '8080',
      '-h',
      '/var/www/html',
    );
    assert.equal(httpd.code, 0, httpd.stderr);
    try {
      const wget = (name: string) => (url: string) =>
        docker('exec', name, 'busybox', 'wget', '-q', '-O-', url);
      assert.equal((await fetchFromInside(wget('web'))).trim(), SERVER_PAGE);
      assert.equal((await fetchFromInside(wget('httpd'), 8080)).trim(), SERVER_PAGE);
      assert.match((await docker('logs', 'web')).stdout, ACCESS_LOG_LINE);
      // busybox httpd -vv logs each request's status on stderr.
      assert.match((await docker('logs', 'httpd')).stderr, /response:200/);
    } finally {
      await docker('rm', '-f', 'web', 'httpd');
    }
    await assertNothingLeft(runtimeRoot);
  });
});
