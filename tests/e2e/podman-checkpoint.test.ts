import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { containerDir } from '../../src/sandbox/container-id.js';
import { flipByte } from '../fixtures/flip-byte.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { type PrivatePodman, privatePodman } from '../fixtures/podman.js';
import { assertNothingLeft, privateDirs, qemuProcessesUsing, runCommand } from './harness.js';

/**
 * Issue 28: podman `container checkpoint` / `container restore` of a container whose VM can be
 * saved (its root on disks hull makes from the rootfs podman mounted: the annotation
 * dev.hull.rootfs=disk). The shell's counter, held in its memory, goes on from where it was;
 * a file written before is there; while checkpointed nothing of the container runs or stays
 * in hull's root; a damaged checkpoint is refused in one line and stays a checkpoint.
 */
describe('podman container checkpoint/restore with --runtime hull', { timeout: 900_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let podman: PrivatePodman['podman'];

  before(async () => {
    dirs = await privateDirs('podman-ckpt');
    ({ podman } = await privatePodman(dirs.scratch));
    const load = await podman('load', '-i', await busyboxImageArchive(join(dirs.scratch, 'image')));
    assert.equal(load.code, 0, load.stderr);
  });
  after(async () => {
    await podman('rm', '-a', '-f', '-t', '1');
    await dirs.cleanup();
  });

  const hullRoot = () => join(dirs.scratch, 'hull');
  const statusOf = async (name: string) =>
    (await podman('inspect', '--format', '{{.State.Status}} {{.State.Checkpointed}}', name)).stdout.trim();
  const counterOf = async (name: string) => {
    const r = await podman('exec', name, 'cat', '/tmp/count');
    assert.equal(r.code, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  /** Waits until the counter reaches `atLeast` (the shell counts 5 a second, slower under TCG). */
  const counterReaches = async (name: string, atLeast: number) => {
    let count = await counterOf(name);
    for (let i = 0; i < 300 && count < atLeast; i++) {
      await new Promise((r) => setTimeout(r, 200));
      count = await counterOf(name);
    }
    assert.ok(count >= atLeast, `the counter reached ${count}, not ${atLeast}`);
    return count;
  };

  test('a container on disks: checkpoint ends its VM, restore continues its counter with its files intact; a damaged checkpoint is refused and kept; export and import', async (t) => {
    const started = await podman(
      'run',
      '-d',
      '--name',
      'saved',
      '--annotation',
      'dev.hull.rootfs=disk',
      IMAGE,
      'sh',
      '-c',
      // The count is renamed into place: a VM saved between a plain redirect's truncation and
      // its write would restore an empty file, and a read right after the restore would see it.
      'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.next; mv /tmp/count.next /tmp/count; sleep 0.2; done',
    );
    assert.equal(started.code, 0, started.stderr);
    try {
      const id = (await podman('inspect', '--format', '{{.Id}}', 'saved')).stdout.trim();
      const written = await podman('exec', 'saved', 'sh', '-c', 'echo written-before > /data.txt');
      assert.equal(written.code, 0, written.stderr);
      // The files podman binds are copies on the container's disk.
      const hostname = await podman('exec', 'saved', 'cat', '/etc/hostname');
      assert.deepEqual([hostname.code, hostname.stdout.trim()], [0, id.slice(0, 12)]);
      const before = await counterReaches('saved', 10);

      // hull saves a VM by ending it: --leave-running is refused in one line, and it runs on.
      const leaveRunning = await podman('container', 'checkpoint', '--leave-running', 'saved');
      assert.notEqual(leaveRunning.code, 0);
      assert.equal(
        leaveRunning.stderr.split('\n').filter((l) => l.includes('cannot be left running')).length,
        1,
      );
      assert.equal(await statusOf('saved'), 'running false');
      let since = Date.now();
      const checkpoint = await podman('container', 'checkpoint', 'saved');
      assert.equal(checkpoint.code, 0, checkpoint.stderr);
      t.diagnostic(`podman container checkpoint: ${Date.now() - since} ms`);
      assert.equal(await statusOf('saved'), 'exited true');
      const listed = await podman('ps', '-a', '--filter', 'name=saved', '--format', '{{.Status}}');
      assert.match(listed.stdout, /^Exited \(0\)/);
      // While checkpointed the container holds nothing: no VM, nothing in hull's root.
      const containerDirectory = containerDir({ root: hullRoot() }, id);
      assert.deepEqual(await qemuProcessesUsing(`${containerDirectory}/`), []);
      assert.equal(existsSync(containerDirectory), false, "hull's root keeps nothing of it");
      const checkpointDir = join(dirs.scratch, 'storage', 'overlay-containers', id, 'userdata', 'checkpoint');
      const files = (await readdir(checkpointDir)).sort();
      // ram.base: the template's memory the VM was cloned from, which vm.state holds only the
      // pages written over (a link to the template's copy on disk; export copies its bytes).
      const kept = ['disk.qcow2', 'image.erofs', 'inventory.img', 'ram.base', 'vm-state.json', 'vm.state'];
      assert.deepEqual(files, kept);
      for (const name of kept) {
        const info = await stat(join(checkpointDir, name));
        assert.deepEqual([info.uid, info.mode & 0o777], [0, 0o600], `${name} is root's, 0600`);
      }
      assert.equal((await stat(checkpointDir)).mode & 0o777, 0o700);

      // A damaged state: one line, and the container stays checkpointed.
      await flipByte(join(checkpointDir, 'vm.state'));
      const refused = await podman('container', 'restore', 'saved');
      assert.notEqual(refused.code, 0);
      assert.match(
        refused.stderr,
        /its SHA-256 is not the one recorded at save; container [0-9a-f]+ stays checkpointed/,
      );
      assert.equal(refused.stderr.split('\n').filter((line) => line.includes('SHA-256')).length, 1);
      assert.equal(await statusOf('saved'), 'exited true');
      assert.deepEqual(await qemuProcessesUsing(`${containerDirectory}/`), []);
      assert.equal(existsSync(containerDirectory), false);
      await flipByte(join(checkpointDir, 'vm.state'));

      since = Date.now();
      const restored = await podman('container', 'restore', 'saved');
      assert.equal(restored.code, 0, restored.stderr);
      t.diagnostic(`podman container restore: ${Date.now() - since} ms`);
      assert.equal(await statusOf('saved'), 'running false');
      const running = await podman('ps', '--filter', 'name=saved', '--format', '{{.Status}}');
      assert.match(running.stdout, /^Up /);
      // The shell was not started again: its counter goes on from where it was, and counts.
      const after = await counterOf('saved');
      assert.ok(after >= before, `the counter went on from ${before}, not back to ${after}`);
      await counterReaches('saved', after + 3);
      const data = await podman('exec', 'saved', 'cat', '/data.txt');
      assert.deepEqual([data.code, data.stdout], [0, 'written-before\n']);
      assert.equal((await qemuProcessesUsing(`${containerDirectory}/`)).length, 1, 'one VM again');

      // Exported (podman tars the checkpoint: as large as what the VM and container hold) and
      // imported after the container was removed: the same processes go on.
      const archive = join(dirs.scratch, 'saved.tar.zst');
      const beforeExport = await counterOf('saved');
      const exported = await podman('container', 'checkpoint', '--export', archive, 'saved');
      assert.equal(exported.code, 0, exported.stderr);
      const { size } = await stat(archive);
      t.diagnostic(`checkpoint --export archive: ${(size / 2 ** 20).toFixed(1)} MiB`);
      assert.ok(size < 256 * 2 ** 20, `the archive is ${size} bytes`);
      assert.equal((await podman('rm', 'saved')).code, 0);
      const imported = await podman('container', 'restore', '--import', archive);
      assert.equal(imported.code, 0, imported.stderr);
      const afterImport = await counterOf('saved');
      assert.ok(
        afterImport >= beforeExport,
        `the counter went on from ${beforeExport}, not back to ${afterImport}`,
      );
      const importedData = await podman('exec', 'saved', 'cat', '/data.txt');
      assert.deepEqual([importedData.code, importedData.stdout], [0, 'written-before\n']);

      const stopped = await podman('stop', '-t', '1', 'saved');
      assert.equal(stopped.code, 0, stopped.stderr);
    } finally {
      await podman('rm', '-f', '-t', '1', 'saved');
    }
    await assertNothingLeft(hullRoot());
  });

  /**
   * podman tears the container's network down at a checkpoint and makes it again at a restore,
   * with the same address and MAC: the resumed guest's configuration still holds, and its VM
   * takes over the new namespace. Checkpointed twice: a restored container saves again.
   */
  test('a container on disks with a network: its server answers at the same address after each of two restores', async () => {
    const networked = await privateDirs('podman-ckpt-net');
    const root = join(networked.scratch, 'hull');
    const net = await privatePodman(networked.scratch, { bridgeSubnet: '10.231.47.0/24' });
    try {
      const load = await net.podman(
        'load',
        '-i',
        await busyboxImageArchive(join(networked.scratch, 'image')),
      );
      assert.equal(load.code, 0, load.stderr);
      const started = await net.podman(
        'run',
        '-d',
        '--name',
        'web',
        '--annotation',
        'dev.hull.rootfs=disk',
        IMAGE,
        'sh',
        '-c',
        'echo served > /tmp/index.html; httpd -f -p 80 -h /tmp',
      );
      assert.equal(started.code, 0, started.stderr);
      const addressOf = async () =>
        (await net.podman('inspect', '--format', '{{.NetworkSettings.IPAddress}}', 'web')).stdout.trim();
      const address = await addressOf();
      assert.match(address, /^10\.231\.47\.\d+$/);
      const page = async () => {
        for (let i = 0; i < 50; i++) {
          const r = await runCommand('curl', ['-s', '-m', '5', `http://${address}/index.html`]);
          if (r.code === 0) return r.stdout;
          await new Promise((done) => setTimeout(done, 200));
        }
        return '';
      };
      assert.equal(await page(), 'served\n');
      for (let round = 1; round <= 2; round++) {
        const checkpoint = await net.podman('container', 'checkpoint', 'web');
        assert.equal(checkpoint.code, 0, checkpoint.stderr);
        const restored = await net.podman('container', 'restore', 'web');
        assert.equal(restored.code, 0, restored.stderr);
        assert.equal(await addressOf(), address);
        assert.equal(await page(), 'served\n', `the server answers after restore ${round}`);
      }
      assert.equal((await net.podman('rm', '-f', '-t', '1', 'web')).code, 0);
      await assertNothingLeft(root);
    } finally {
      await net.podman('rm', '-a', '-f', '-t', '1');
      if (net.bridge) await runCommand('ip', ['link', 'del', net.bridge]);
      await networked.cleanup();
    }
  });
});
