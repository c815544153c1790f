import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  ROOTFS_ANNOTATION,
  ROOTFS_DISK_ANNOTATION,
  ROOTFS_IMAGE_ANNOTATION,
} from '../../src/oci/rootfs-annotations.js';
import type { Spec } from '../../src/oci/spec.js';
import { containerImagesDir } from '../../src/paths.js';
import { bundleDiskPaths } from '../../src/storage/bundle-disks.js';
import { privileged } from '../fixtures/bundle.js';
import { flipByte } from '../fixtures/flip-byte.js';
import {
  bundleTests,
  hull,
  hullDetached,
  hullKeepingOutput,
  qemuProcessesUsing,
  runCommand,
} from './harness.js';

/**
 * Saved VMs and roots on disks, attacked: a checkpoint directory is something a user may get
 * from someone else (podman `container restore --import`), and a bundle's annotations are
 * the caller's. Root in a privileged container makes setuid files and device nodes on its
 * disk; whatever the checkpoint holds, no host file is read into a guest or written, no guest
 * file becomes a host privilege, the disk is never mounted on the host, and each refusal is
 * one line that leaves the checkpoint whole and nothing running.
 */
describe('the wall around saved VMs and roots on disks', { timeout: 900_000 }, () => {
  const t = bundleTests('wall-saved');

  const onDisks = (spec: Spec) => {
    privileged(spec);
    spec.annotations = { ...spec.annotations, [ROOTFS_ANNOTATION]: 'disk' };
  };
  /** Root in the guest makes a setuid copy of busybox, two device nodes and a file, then counts. */
  const ATTACKER = [
    'trap "exit 0" TERM',
    'mknod /blockdev b 8 0 && mknod /chardev c 1 3 && cp /bin/busybox /suid && chmod 4755 /suid',
    'echo written-before > /data.txt && touch /tmp/ready',
    // The count is renamed into place: a VM saved between a plain redirect's truncation and
    // its write would restore an empty file, and a read right after the restore would see it.
    'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.next; mv /tmp/count.next /tmp/count; sleep 0.2; done',
  ].join('; ');

  const exec = (id: string, ...command: string[]) => hull(['--root', t.root, 'exec', id, ...command]);
  async function waitReady(id: string): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if ((await exec(id, 'test', '-e', '/tmp/ready')).code === 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.fail(`container ${id} never got ready`);
  }
  async function removeContainer(id: string): Promise<void> {
    const r = await hull(['--root', t.root, 'delete', '--force', id]);
    assert.equal(r.code, 0, r.stderr);
  }

  /** Setuid and setgid files and device nodes under `dirs` on the host (there must be none). */
  async function hostPrivileges(...dirs: string[]): Promise<string> {
    const found = await runCommand('find', [
      ...dirs,
      '-xdev',
      '(',
      '-perm',
      '-4000',
      '-o',
      '-perm',
      '-2000',
      '-o',
      '-type',
      'b',
      '-o',
      '-type',
      'c',
      ')',
      '-print',
    ]);
    return found.stdout.trim();
  }

  /**
   * Watches, until stopped, for any mount or loop device of a file under `dir`: the disks are
   * written by guests and must never be mounted on the host (not for a copy either).
   */
  function watchHostMounts(dir: string): { stop: () => Promise<string[]> } {
    const seen = new Set<string>();
    let running = true;
    const loop = (async () => {
      while (running) {
        // (A VM's share directory is a bind mount of a host directory: not a disk.)
        const mounts = await readFile('/proc/self/mountinfo', 'utf8');
        for (const line of mounts.split('\n')) {
          const [, source = ''] = line.split(' - ');
          if (
            line.includes(dir) &&
            /^(ext[234]|erofs|fuse\S*|qcow\S*) \/dev\/(loop|nbd)|^(erofs|fuse)/.test(source)
          )
            seen.add(`mount: ${line}`);
          if (/\/dev\/(loop|nbd)/.test(source) && line.includes(dir)) seen.add(`mount: ${line}`);
        }
        for (const device of await readdir('/sys/block').catch(() => [] as string[])) {
          if (!device.startsWith('loop')) continue;
          const backing = await readFile(`/sys/block/${device}/loop/backing_file`, 'utf8').catch(() => '');
          if (backing.includes(dir)) seen.add(`loop: ${device} ${backing.trim()}`);
        }
        // qemu-nbd would serve a disk as /dev/nbdN: any connected one while hull works is one.
        for (const device of await readdir('/sys/block').catch(() => [] as string[])) {
          if (device.startsWith('nbd') && existsSync(`/sys/block/${device}/pid`)) seen.add(`nbd: ${device}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return [...seen];
      },
    };
  }

  /** hull-template-memory processes (the RAM base made memory again) working for `dir`. */
  const holdersFor = async (dir: string) =>
    (await runCommand('pgrep', ['-f', `hull-template-memory .*${dir}`])).stdout.split('\n').filter(Boolean);

  const fingerprint = async (path: string) => {
    const info = await stat(path);
    return `${info.size} ${info.mtimeMs} ${createHash('sha256')
      .update(await readFile(path))
      .digest('hex')}`;
  };

  test('a tampered checkpoint (symlinks, hardlinks, FIFOs, devices, wrong sizes, a foreign backing file, a bad hash) is refused in one line each; the good one then restores, and no guest setuid file or device node, nor any mount of the disk, reaches the host', async () => {
    const b = await t.bundle(['sh', '-c', ATTACKER], onDisks);
    const watch = watchHostMounts(t.scratch);
    const started = await hullDetached(t.root, ['-b', b.dir, b.id]);
    assert.equal(started.code, 0, started.stderr);
    let running = true;
    let mounted: string[] = [];
    try {
      await waitReady(b.id);
      const checkpoint = join(t.scratch, 'checkpoint');
      const saved = await hull(['--root', t.root, 'checkpoint', '--image-path', checkpoint, b.id]);
      assert.equal(saved.code, 0, saved.stderr);
      running = false;
      // As podman does once a container is checkpointed.
      await removeContainer(b.id);
      assert.equal(existsSync(join(t.root, b.id)), false);
      assert.equal(await hostPrivileges(t.root, checkpoint), '', 'no setuid file or device node on the host');

      // A host file an attacker would have read into the guest or written through the disk.
      const host = join(t.scratch, 'host-secret');
      await writeFile(host, 'host secret\n');
      const hostAtFirst = await fingerprint(host);
      const aside = join(t.scratch, 'aside');
      await mkdir(aside);
      const inCheckpoint = (name: string) => join(checkpoint, name);
      const fifo = async (path: string) => {
        const r = await runCommand('mkfifo', ['-m', '600', path]);
        assert.equal(r.code, 0, r.stderr);
      };
      const restore = () =>
        hullKeepingOutput(t.root, [
          'restore',
          '--bundle',
          b.dir,
          '--image-path',
          checkpoint,
          '--detach',
          b.id,
        ]);
      const files = ['disk.qcow2', 'image.erofs', 'inventory.img', 'ram.base', 'vm-state.json', 'vm.state'];
      const checkpointBefore = new Map<string, number>();
      for (const name of files) checkpointBefore.set(name, (await stat(inCheckpoint(name))).size);
      const imageBytes = checkpointBefore.get('image.erofs')!;

      /** Swaps `name` for what `make` puts there, restores, and puts the original back. */
      const attack = async (
        name: string,
        what: string,
        make: (path: string) => Promise<void>,
        refusal: RegExp,
        /** Whoever made the archive wrote its record too: the disk's hash made to match. */
        forgeRecord = false,
      ) => {
        const record = await readFile(inCheckpoint('inventory.img'), 'utf8');
        await rename(inCheckpoint(name), join(aside, name));
        try {
          await make(inCheckpoint(name));
          if (forgeRecord) {
            const writableSha256 = createHash('sha256')
              .update(await readFile(inCheckpoint(name)))
              .digest('hex');
            await writeFile(
              inCheckpoint('inventory.img'),
              JSON.stringify({ ...JSON.parse(record), writableSha256 }),
            );
          }
          const hostFiles = [host, sizedHost].filter((f) => existsSync(f));
          const hostBefore = await Promise.all(hostFiles.map(fingerprint));
          const since = Date.now();
          const r = await restore();
          if (r.code === 0) await removeContainer(b.id);
          assert.notEqual(r.code, 0, `${name} as ${what} was restored`);
          const lines = r.stderr.trim().split('\n');
          assert.equal(lines.length, 1, `${name} as ${what}: one line, not ${r.stderr}`);
          assert.match(lines[0]!, refusal, `${name} as ${what}`);
          assert.ok(Date.now() - since < 60_000, `${name} as ${what}: refused without waiting`);
          assert.deepEqual(await qemuProcessesUsing(t.root), [], `${name} as ${what}: no VM`);
          assert.deepEqual(await holdersFor(checkpoint), [], `${name} as ${what}: no memory holder left`);
          assert.equal(existsSync(join(t.root, b.id)), false, `${name} as ${what}: no container left`);
          assert.deepEqual(
            await Promise.all(hostFiles.map(fingerprint)),
            hostBefore,
            `${name} as ${what}: the host files are untouched`,
          );
        } finally {
          await rm(inCheckpoint(name), { force: true });
          await rename(join(aside, name), inCheckpoint(name));
          if (forgeRecord) await writeFile(inCheckpoint('inventory.img'), record, { mode: 0o600 });
        }
      };
      const original = (name: string) => join(aside, name);
      /** A host file of `bytes` (a disk's size), its first bytes a secret. */
      const sizedHost = join(t.scratch, 'host-sized');
      const sized = async (bytes: number) => {
        await writeFile(sizedHost, 'host secret\n');
        await truncate(sizedHost, bytes);
        return sizedHost;
      };

      // The writable disk: handed to QEMU writable once expanded, so it must be the checkpoint's own.
      await attack('disk.qcow2', 'a symlink to a host file', (p) => symlink(host, p), /lacks its root disks/);
      await attack('disk.qcow2', 'a hardlink of a host file', (p) => link(host, p), /lacks its root disks/);
      await attack('disk.qcow2', 'a FIFO', fifo, /lacks its root disks/);
      await attack('disk.qcow2', 'a device', (p) => symlink('/dev/zero', p), /lacks its root disks/);
      await attack(
        'disk.qcow2',
        'a qcow2 backed by a host file',
        async (p) => {
          const r = await runCommand('qemu-img', [
            'create',
            '-q',
            '-f',
            'qcow2',
            '-F',
            'raw',
            '-b',
            await sized(64 * 2 ** 20),
            p,
          ]);
          assert.equal(r.code, 0, r.stderr);
        },
        /names another file to read: it is refused/,
        true,
      );
      await attack(
        'disk.qcow2',
        'a qcow2 of 1 TiB',
        async (p) => {
          const r = await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', p, '1T']);
          assert.equal(r.code, 0, r.stderr);
        },
        /is 1099511627776 bytes, \d+ were saved: it is refused/,
        true,
      );
      await attack(
        'disk.qcow2',
        'truncated',
        async (p) => {
          await copyFile(original('disk.qcow2'), p);
          await truncate(p, 4096);
        },
        /the writable disk of the checkpoint in \S+ is not the one saved/,
      );
      // The image: its bytes become the guest's disk (which guest root reads raw).
      await attack(
        'image.erofs',
        'a symlink to a host file',
        async (p) => symlink(await sized(imageBytes), p),
        /is not the one saved/,
      );
      await attack(
        'image.erofs',
        'a hardlink of a host file',
        async (p) => link(await sized(imageBytes), p),
        /is not the one saved/,
      );
      await attack('image.erofs', 'a FIFO', fifo, /is not the one saved/);
      await attack(
        'image.erofs',
        'truncated',
        async (p) => {
          await copyFile(original('image.erofs'), p);
          await truncate(p, imageBytes - 4096);
        },
        /is not the one saved/,
      );
      // The saved VM: read by QEMU, so checked through the very descriptor it is given.
      await attack(
        'vm.state',
        'a symlink to a saved state elsewhere',
        (p) => symlink(original('vm.state'), p),
        /it is a symlink; container \S+ stays checkpointed$/,
      );
      await attack(
        'vm.state',
        'a hardlink of a saved state elsewhere',
        (p) => link(original('vm.state'), p),
        /it has 2 links, not one of its own; container \S+ stays checkpointed$/,
      );
      await attack('vm.state', 'a FIFO', fifo, /it is not a regular file; container \S+ stays checkpointed$/);
      await attack('vm.state', 'a device', (p) => symlink('/dev/zero', p), /it is a symlink/);
      await attack(
        'vm.state',
        'truncated',
        async (p) => {
          await copyFile(original('vm.state'), p);
          await truncate(p, checkpointBefore.get('vm.state')! - 4096);
        },
        /its size is \d+ bytes, \d+ were saved/,
      );
      await attack(
        'vm.state',
        'one byte changed',
        async (p) => {
          await copyFile(original('vm.state'), p);
          await flipByte(p, Math.floor(checkpointBefore.get('vm.state')! / 2));
        },
        /its SHA-256 is not the one recorded at save/,
      );
      // The RAM base: the template's memory the saved RAM was written over (a hard link of the
      // template's copy). Once the template is gone it is read into the memory the VM is given,
      // so it must be that very file: the checkpoint's own, root's, 0600, its size and hash.
      assert.ok(existsSync(inCheckpoint('ram.base')), 'a clone checkpointed keeps its RAM base');
      const { shape } = JSON.parse(await readFile(inCheckpoint('vm-state.json'), 'utf8')) as {
        shape: string;
      };
      // Only this checkpoint's template (the machine's template store is shared).
      const removed = await hull(['template', 'rm', shape]);
      assert.equal(removed.code, 0, removed.stderr);
      const baseBytes = (await stat(inCheckpoint('ram.base'))).size;
      const baseCopy = async (p: string) => {
        const r = await runCommand('cp', ['--sparse=always', original('ram.base'), p]);
        assert.equal(r.code, 0, r.stderr);
      };
      await attack(
        'ram.base',
        'a symlink to a host file of its size',
        async (p) => symlink(await sized(baseBytes), p),
        /its RAM base is a symlink; container \S+ stays checkpointed$/,
      );
      await sized(4096); // (fingerprinted at every attack from now on)
      await attack(
        'ram.base',
        'a FIFO',
        fifo,
        /its RAM base is not a regular file; container \S+ stays checkpointed$/,
      );
      await attack(
        'ram.base',
        'a device',
        (p) => symlink('/dev/zero', p),
        /its RAM base is a symlink; container \S+ stays checkpointed$/,
      );
      await attack(
        'ram.base',
        'one byte changed',
        async (p) => {
          await baseCopy(p);
          await flipByte(p, Math.floor(baseBytes / 2) + 123);
        },
        /its RAM base is not the one recorded at save \(SHA-256\); container \S+ stays checkpointed$/,
      );
      await attack(
        'ram.base',
        'truncated',
        async (p) => {
          await baseCopy(p);
          await truncate(p, baseBytes - 4096);
        },
        /its RAM base is \d+ bytes, \d+ were saved; container \S+ stays checkpointed$/,
      );
      await attack(
        'ram.base',
        'a copy readable by all (0644)',
        async (p) => {
          await baseCopy(p);
          await chmod(p, 0o644);
        },
        /its RAM base must be this user's and 0600 \(owner \d+, mode 644\); container \S+ stays checkpointed$/,
      );
      await attack('vm-state.json', 'a FIFO', fifo, /no valid vm-state.json/);
      await attack(
        'vm-state.json',
        'a symlink to /dev/zero',
        (p) => symlink('/dev/zero', p),
        /no valid vm-state.json/,
      );
      await attack(
        'vm-state.json',
        'a symlink to its copy',
        (p) => symlink(original('vm-state.json'), p),
        /no valid vm-state.json/,
      );
      // hull's record: read before anything else, so it must be small and the directory's own.
      await attack(
        'inventory.img',
        'a FIFO',
        fifo,
        /is a FIFO, not a regular file; the checkpoint is left as it is$/,
      );
      await attack('inventory.img', 'a symlink to /dev/zero', (p) => symlink('/dev/zero', p), /is a symlink/);
      await attack(
        'inventory.img',
        'a symlink to its copy',
        (p) => symlink(original('inventory.img'), p),
        /is a symlink/,
      );
      await attack(
        'inventory.img',
        'oversized',
        async (p) =>
          writeFile(p, Buffer.concat([await readFile(original('inventory.img')), Buffer.alloc(2 ** 20, 32)])),
        /is larger than 65536 bytes/,
      );
      await attack(
        'inventory.img',
        'naming a disk of 1 PiB',
        async (p) => {
          const record = JSON.parse(await readFile(original('inventory.img'), 'utf8'));
          await writeFile(p, JSON.stringify({ ...record, writableBytes: 2 ** 50 }), { mode: 0o600 });
        },
        /its inventory.img is damaged/,
      );

      // Every refusal left the checkpoint as it was: the good one restores.
      for (const name of files)
        assert.equal((await stat(inCheckpoint(name))).size, checkpointBefore.get(name), name);
      const restored = await restore();
      assert.equal(restored.code, 0, restored.stderr);
      running = true;
      assert.equal((await qemuProcessesUsing(join(t.root, b.id))).length, 1, 'one VM again');
      assert.deepEqual(await holdersFor(checkpoint), [], "the base's memory is the VMM's alone");
      assert.ok(
        existsSync(inCheckpoint('ram.base.json')),
        'it restored over its base file, made memory again',
      );
      const data = await exec(b.id, 'cat', '/data.txt');
      assert.deepEqual([data.code, data.stdout], [0, 'written-before\n']);
      // In the guest, the setuid file and the device nodes are there, as root made them...
      const inGuest = await exec(b.id, 'stat', '-c', '%a %F', '/suid', '/blockdev', '/chardev');
      assert.equal(inGuest.code, 0, inGuest.stderr);
      assert.match(inGuest.stdout, /^4755 regular file\n.*block special file\n.*character special file\n$/);
      // ...and on the host, nothing of them: the disks are files no host path leads into.
      assert.equal(await hostPrivileges(t.root, checkpoint), '');
      assert.equal(await fingerprint(host), hostAtFirst);
      const count1 = Number((await exec(b.id, 'cat', '/tmp/count')).stdout);
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(Number((await exec(b.id, 'cat', '/tmp/count')).stdout) > count1, 'the counter goes on');
    } finally {
      if (running) await removeContainer(b.id);
      mounted = await watch.stop();
    }
    assert.deepEqual(mounted, [], 'no disk was mounted on the host at any time');
  });

  test("the root-disk annotations through the OCI CLI: another container's disk, a host file, a symlink, relative or .. paths are refused in one line, and the other container's disk is untouched", async () => {
    const victim = await t.bundle(['sh', '-c', ATTACKER], onDisks);
    const started = await hullDetached(t.root, ['-b', victim.dir, victim.id]);
    assert.equal(started.code, 0, started.stderr);
    try {
      await waitReady(victim.id);
      const victimDisk = bundleDiskPaths(join(t.root, victim.id)).writable;
      const victimBefore = await stat(victimDisk);
      // An image disk hull made, if this machine has one (else a path: the disk is refused first).
      const images = containerImagesDir();
      const digest = (await readdir(images).catch(() => [] as string[])).find((d) =>
        existsSync(join(images, d, 'rootfs.erofs')),
      );
      const image = join(images, digest ?? 'none', 'rootfs.erofs');
      const ownDiskOf = (id: string) => join(t.root, '@serve', 'sandboxes', id, 'disk.raw');
      /** `annotationsOf` is given the one disk path the container may name (serve's, for its ID). */
      const attack = async (
        what: string,
        annotationsOf: (ownDisk: string) => Record<string, string>,
        refusal: RegExp,
      ) => {
        const b = await t.bundle(['true'], privileged);
        const config = join(b.dir, 'config.json');
        const spec = JSON.parse(await readFile(config, 'utf8')) as Spec;
        spec.annotations = { ...spec.annotations, ...annotationsOf(ownDiskOf(b.id)) };
        await writeFile(config, JSON.stringify(spec, null, 2));
        const ownDir = join(t.root, '@serve', 'sandboxes', b.id);
        if (what === 'a symlink at its own place to the other disk') {
          await mkdir(ownDir, { recursive: true });
          await symlink(victimDisk, join(ownDir, 'disk.raw'));
        }
        try {
          const r = await hullKeepingOutput(t.root, ['create', '-b', b.dir, b.id]);
          assert.notEqual(r.code, 0, `${what}: created`);
          const lines = r.stderr.trim().split('\n');
          assert.equal(lines.length, 1, `${what}: one line, not ${r.stderr}`);
          assert.match(lines[0]!, refusal, what);
          assert.equal(existsSync(join(t.root, b.id)), false, `${what}: nothing left`);
          assert.deepEqual(await qemuProcessesUsing(join(t.root, b.id)), [], `${what}: no VM`);
        } finally {
          await rm(join(t.root, '@serve'), { recursive: true, force: true });
        }
      };
      await attack(
        "another container's disk",
        () => ({ [ROOTFS_IMAGE_ANNOTATION]: image, [ROOTFS_DISK_ANNOTATION]: victimDisk }),
        /is not this container's own disk: only hull serve names one/,
      );
      await attack(
        "another container's disk, asking hull to make disks too",
        () => ({
          [ROOTFS_ANNOTATION]: 'disk',
          [ROOTFS_IMAGE_ANNOTATION]: image,
          [ROOTFS_DISK_ANNOTATION]: victimDisk,
        }),
        /is not this container's own disk/,
      );
      await attack(
        'a host file',
        () => ({ [ROOTFS_IMAGE_ANNOTATION]: image, [ROOTFS_DISK_ANNOTATION]: '/etc/passwd' }),
        /is not this container's own disk/,
      );
      await attack(
        "a path with .. to the other container's disk",
        () => ({
          [ROOTFS_IMAGE_ANNOTATION]: image,
          [ROOTFS_DISK_ANNOTATION]: join(
            t.root,
            '@serve',
            'sandboxes',
            '..',
            '..',
            victim.id,
            'rootfs-disks',
            'disk.raw',
          ),
        }),
        /not this container's own disk|absolute path/,
      );
      await attack(
        'a relative path',
        () => ({ [ROOTFS_IMAGE_ANNOTATION]: image, [ROOTFS_DISK_ANNOTATION]: 'disk.raw' }),
        /absolute path/,
      );
      await attack(
        'a host file as the image',
        (ownDisk) => ({ [ROOTFS_IMAGE_ANNOTATION]: '/etc/shadow', [ROOTFS_DISK_ANNOTATION]: ownDisk }),
        /must be an absolute path under|not a regular file/,
      );
      await attack(
        'a symlink at its own place to the other disk',
        (ownDisk) => ({ [ROOTFS_IMAGE_ANNOTATION]: image, [ROOTFS_DISK_ANNOTATION]: ownDisk }),
        /not a regular file|must be an absolute path under/,
      );
      await attack('an unknown root', () => ({ [ROOTFS_ANNOTATION]: 'host' }), /use share or disk/);

      const victimAfter = await stat(victimDisk);
      assert.deepEqual(
        [victimAfter.uid, victimAfter.mode, victimAfter.size],
        [victimBefore.uid, victimBefore.mode, victimBefore.size],
        "the other container's disk is as it was (owner, mode, size)",
      );
      const data = await exec(victim.id, 'cat', '/data.txt');
      assert.deepEqual([data.code, data.stdout], [0, 'written-before\n'], 'the other container runs on');
    } finally {
      await removeContainer(victim.id);
    }
  });
  test("a clone's guest that lifts its container's limit, fills all its RAM and then the page cache stays within the host cgroup's limit: held there or killed, never beyond", async (t2) => {
    const v1 = !existsSync('/sys/fs/cgroup/cgroup.controllers');
    const memoryDir = (path: string) =>
      v1 ? join('/sys/fs/cgroup/memory', path) : join('/sys/fs/cgroup', path);
    const parent = `/hull-e2e-wall-saved-${process.pid}`;
    const path = `${parent}/mem`;
    const b = await t.bundle(
      [
        'sh',
        '-c',
        [
          'trap "exit 0" TERM',
          // Root in a privileged container lifts its own limit in the guest (its cgroup files are
          // read-only only by a mount option), then fills all the RAM, then the page cache.
          'mount -o remount,rw /sys/fs/cgroup 2>/dev/null',
          'for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.limit_in_bytes; do [ -e $f ] && { echo max > $f || echo -1 > $f; } 2>/dev/null && echo "$f: $(cat $f)"; done',
          'mkdir -p /mnt/fill && mount -t tmpfs -o size=100% fill /mnt/fill',
          'dd if=/dev/zero of=/mnt/fill/ram bs=1M 2>&1 | tail -1; echo filled',
          'dd if=/dev/zero of=/tmp/cache bs=1M count=1024 2>/dev/null; sync; echo cached',
          'sleep 600 & wait',
        ].join('; '),
      ],
      (spec) => {
        privileged(spec);
        spec.linux!.cgroupsPath = path;
        spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 64 * 2 ** 20 } };
      },
    );
    const run = await hullDetached(t.root, ['--pid-file', join(b.dir, 'pid'), '--bundle', b.dir, b.id]);
    assert.equal(run.code, 0, run.stderr);
    try {
      const monitor = Number(await readFile(join(b.dir, 'pid'), 'utf8'));
      const [qemu] = await qemuProcessesUsing(t.root);
      assert.ok(qemu, 'the container has a VM');
      const clone = (await readFile(`/proc/${qemu}/cmdline`, 'utf8')).includes('-incoming');
      const limit = Number(
        await readFile(join(memoryDir(path), v1 ? 'memory.limit_in_bytes' : 'memory.max'), 'utf8'),
      );
      const alive = (pid: number) => existsSync(`/proc/${pid}`);
      let peak = 0;
      const output = `${t.root}.detached.out`;
      for (let i = 0; i < 600 && alive(qemu); i++) {
        const current = Number(
          await readFile(
            join(memoryDir(path), v1 ? 'memory.usage_in_bytes' : 'memory.current'),
            'utf8',
          ).catch(() => '0'),
        );
        peak = Math.max(peak, current);
        if ((await readFile(output, 'utf8').catch(() => '')).includes('cached')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (v1)
        peak = Math.max(
          peak,
          Number(await readFile(join(memoryDir(path), 'memory.max_usage_in_bytes'), 'utf8')),
        );
      else
        peak = Math.max(
          peak,
          Number(await readFile(join(memoryDir(path), 'memory.peak'), 'utf8').catch(() => '0')),
        );
      const guestSaid = await readFile(output, 'utf8').catch(() => '');
      const held = `clone ${clone}, limit ${limit / 2 ** 20} MiB, peak ${peak / 2 ** 20} MiB, QEMU ${alive(qemu) ? 'alive' : 'killed'}, monitor ${alive(monitor) ? 'alive' : 'gone'}, guest said ${JSON.stringify(guestSaid.slice(-200))}`;
      t2.diagnostic(held);
      // The attack ran: the guest filled its RAM (and went on), or was killed doing so.
      assert.ok(guestSaid.includes('filled') || !alive(qemu), `the guest filled its memory: ${held}`);
      assert.ok(peak <= limit, `the sandbox's host memory stayed within its limit: ${held}`);
      // Killed at the limit: the VM, not its monitor (which would leave a QEMU nobody owns).
      assert.ok(alive(monitor) || !alive(qemu), `no VM is left without its monitor: ${held}`);
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id], { input: null });
      await rm(`${t.root}.detached.out`, { force: true });
      for (const dir of [memoryDir(path), memoryDir(parent)]) await rmdir(dir).catch(() => {});
    }
  });
});
