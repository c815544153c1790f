import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Dockerd } from '../fixtures/dockerd.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { type PrivatePodman, privatePodman } from '../fixtures/podman.js';
import { fetchFromHost } from '../fixtures/web-server.js';
import { assertNothingLeft, privateDirs, runCommand } from './harness.js';

/** A busybox httpd answering with the container's hostname. */
const SERVE = ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
/** Host ports for `-p 127.0.0.1:PORT:80`, apart for tests running side by side. */
const PORT = 18_000 + (process.pid % 1000) * 2;

/** Removes a host link the test's client made (a bridge CNI or Docker leaves behind). */
const removeLink = (name: string) => runCommand('ip', ['link', 'del', name]);

describe('podman --runtime hull on its default bridge network', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let podman: PrivatePodman['podman'];
  let bridge: string | undefined;

  before(async () => {
    dirs = await privateDirs('podman-net');
    const d = dirs.scratch;
    // podman's default network (CNI), on a subnet and bridge of the test's.
    ({ podman, bridge } = await privatePodman(d, { bridgeSubnet: '10.231.30.0/24' }));
    const load = await podman('load', '-i', await busyboxImageArchive(join(d, 'image')));
    assert.equal(load.code, 0, load.stderr);
  });
  after(async () => {
    await podman('rm', '-a', '-f', '-t', '1');
    if (bridge) await removeLink(bridge);
    await dirs.cleanup();
  });

  test('-p 127.0.0.1:PORT:80 is reached from the host, and another container reaches it by IP', async () => {
    const web = await podman(
      'run',
      '-d',
      '--name',
      'web',
      '--hostname',
      'podman-web',
      '-p',
      `127.0.0.1:${PORT}:80`,
      IMAGE,
      ...SERVE,
    );
    assert.equal(web.code, 0, web.stderr);
    try {
      assert.equal(await fetchFromHost(`http://127.0.0.1:${PORT}/`), 'podman-web\n');
      const ip = (await podman('inspect', '--format', '{{.NetworkSettings.IPAddress}}', 'web')).stdout.trim();
      assert.match(ip, /^10\.231\.30\.\d+$/);
      const other = await podman('run', '--rm', IMAGE, 'wget', '-q', '-O-', `http://${ip}/`);
      assert.equal(other.stdout, 'podman-web\n', other.stderr);
    } finally {
      assert.equal((await podman('rm', '-f', '-t', '1', 'web')).code, 0);
    }
    await assertNothingLeft(join(dirs.scratch, 'hull'));
  });
});

describe('docker --runtime hull on its default bridge', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let dockerd: Dockerd;
  const bridge = `hulldk${process.pid % 10000}`;
  const docker = (...args: string[]) => dockerd.docker(...args);

  before(async () => {
    dirs = await privateDirs('docker-net');
    // The default bridge network on a bridge of the test's own.
    for (const step of [
      ['link', 'add', bridge, 'type', 'bridge'],
      ['addr', 'add', '10.231.31.1/24', 'dev', bridge],
      ['link', 'set', bridge, 'up'],
    ]) {
      const r = await runCommand('ip', step);
      assert.equal(r.code, 0, r.stderr);
    }
    dockerd = await Dockerd.start(join(dirs.scratch, 'docker'), { bridge });
    const load = await docker('load', '-i', await busyboxImageArchive(join(dirs.scratch, 'image')));
    assert.equal(load.code, 0, load.stderr);
  });
  after(async () => {
    if (dockerd) {
      await docker('rm', '-f', 'web');
      await dockerd.stop();
    }
    await removeLink(bridge);
    await dirs.cleanup();
  });

  test('-p 127.0.0.1:PORT:80 is reached from the host, and another container reaches it by IP', async () => {
    const web = await docker(
      'run',
      '-d',
      '--name',
      'web',
      '--hostname',
      'docker-web',
      '--runtime',
      'hull',
      '-p',
      `127.0.0.1:${PORT + 1}:80`,
      IMAGE,
      ...SERVE,
    );
    assert.equal(web.code, 0, web.stderr);
    try {
      assert.equal(await fetchFromHost(`http://127.0.0.1:${PORT + 1}/`), 'docker-web\n');
      const ip = (await docker('inspect', '--format', '{{.NetworkSettings.IPAddress}}', 'web')).stdout.trim();
      assert.match(ip, /^10\.231\.31\.\d+$/);
      const other = await docker(
        'run',
        '--rm',
        '--runtime',
        'hull',
        IMAGE,
        'wget',
        '-q',
        '-O-',
        `http://${ip}/`,
      );
      assert.equal(other.stdout, 'docker-web\n', other.stderr);
    } finally {
      assert.equal((await docker('rm', '-f', 'web')).code, 0);
    }
    await assertNothingLeft(dockerd.runtimeRoot);
    const attached = (await runCommand('ip', ['-o', 'link', 'show', 'master', bridge])).stdout.trim();
    assert.equal(attached, '', "no container's veth is left on the bridge");
  });
});
