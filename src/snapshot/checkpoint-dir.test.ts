import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHullError } from '../errors.js';
import { bundleDiskPaths } from '../storage/bundle-disks.js';
import { IMAGE_DISK_BYTES } from '../storage/rootfs-disks.js';
import { run } from '../sys/exec.js';
import {
  completeCheckpoint,
  placeCheckpointDisks,
  readCheckpoint,
  restorableCheckpoint,
} from './checkpoint-dir.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
const signal = () => AbortSignal.timeout(30_000);

/** The record of a checkpoint with a 4 KiB image and a 64 MiB writable disk. */
const record = {
  format: 'hull-checkpoint/1' as const,
  containerId: 'c1',
  imageBytes: 4096,
  writableBytes: 64 * 2 ** 20,
  imageSha256: '0'.repeat(64),
  writableSha256: '0'.repeat(64),
  checkpointedAt: '',
};

const sha256Of = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hull-checkpoint-'));
  dirs.push(dir);
  return dir;
}

/** A container directory holding disks of the sizes hull makes (sparse). */
async function containerWithDisks(): Promise<{ dir: string; disks: ReturnType<typeof bundleDiskPaths> }> {
  const dir = await scratch();
  const disks = bundleDiskPaths(dir);
  await mkdir(disks.dir);
  // An erofs superblock saying 2 blocks of 4 KiB, then the padding.
  const superblock = Buffer.alloc(2 * 4096);
  superblock.writeUInt32LE(0xe0f5e1e2, 1024);
  superblock.writeUInt8(12, 1024 + 12);
  superblock.writeUInt32LE(2, 1024 + 36);
  await writeFile(disks.image, superblock);
  await truncate(disks.image, IMAGE_DISK_BYTES);
  await writeFile(disks.writable, 'ext4', { mode: 0o600 });
  await truncate(disks.writable, 64 * 2 ** 20);
  return { dir, disks };
}

test('a checkpoint holds the disks and its record; a restore puts them back and leaves the checkpoint whole', async () => {
  const container = await containerWithDisks();
  const checkpoint = await scratch();
  const saved = await completeCheckpoint(
    checkpoint,
    'c1',
    { image: container.disks.image, writable: container.disks.writable, writableBytes: 64 * 2 ** 20 },
    signal(),
  );
  assert.deepEqual((await readdir(container.disks.dir)).sort(), []);
  const kept = ['disk.qcow2', 'image.erofs', 'inventory.img'];
  assert.deepEqual((await readdir(checkpoint)).sort(), kept);
  for (const name of kept) assert.equal((await stat(join(checkpoint, name))).mode & 0o777, 0o600);
  // As large as what the container holds, not as its disks (podman's tar would write holes out).
  assert.equal((await stat(join(checkpoint, 'image.erofs'))).size, 2 * 4096);
  assert.ok((await stat(join(checkpoint, 'disk.qcow2'))).size < 2 ** 20);
  assert.deepEqual(await readCheckpoint(checkpoint, 'c1'), saved);

  const restored = await scratch();
  const disks = await placeCheckpointDisks(checkpoint, saved, restored, signal());
  assert.equal(disks.writableBytes, 64 * 2 ** 20);
  assert.equal((await stat(disks.writable)).size, 64 * 2 ** 20);
  assert.equal((await readFile(disks.writable)).subarray(0, 4).toString(), 'ext4');
  assert.equal((await stat(disks.image)).size, IMAGE_DISK_BYTES);
  assert.deepEqual((await readdir(checkpoint)).sort(), kept);
  assert.equal((await stat(join(checkpoint, 'image.erofs'))).size, 2 * 4096, 'the checkpoint is as it was');
});

test('a checkpoint hull did not make (a runc one, or none) is refused in one line, and so are missing disks', async () => {
  const runc = await scratch();
  await writeFile(join(runc, 'inventory.img'), Buffer.from([0x54, 0x56, 0x00, 0x01]));
  const refusedAs = (pattern: RegExp) => (err: unknown) =>
    isHullError(err, 'ERR_SAVED_STATE') && pattern.test(err.message) && !err.message.includes('\n');
  await assert.rejects(readCheckpoint(runc, 'c1'), refusedAs(/not a checkpoint hull made/));
  await assert.rejects(readCheckpoint(await scratch(), 'c1'), refusedAs(/holds no inventory.img/));
  await writeFile(join(runc, 'inventory.img'), JSON.stringify(record));
  await assert.rejects(
    placeCheckpointDisks(runc, record, await scratch(), signal()),
    refusedAs(/lacks its root disks .*the checkpoint is left as it is$/),
  );
});

test("a checkpoint's qcow2 disk that names another file (a backing file) is refused: no host file is read", async () => {
  const dir = await scratch();
  const secret = join(dir, 'secret');
  await writeFile(secret, 'host secret');
  await truncate(secret, 64 * 2 ** 20);
  await writeFile(join(dir, 'image.erofs'), Buffer.alloc(4096));
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, join(dir, 'disk.qcow2')]);
  const target = await scratch();
  // Its record made to match (whoever made the archive wrote the record too).
  const forged = {
    ...record,
    imageSha256: await sha256Of(join(dir, 'image.erofs')),
    writableSha256: await sha256Of(join(dir, 'disk.qcow2')),
  };
  await assert.rejects(
    placeCheckpointDisks(dir, forged, target, signal()),
    (err: unknown) => isHullError(err, 'ERR_SAVED_STATE') && /names another file to read/.test(err.message),
  );
  assert.equal(existsSync(bundleDiskPaths(target).writable), false);
});

test("a checkpoint of a VM that runs on (the shim's) copies the image and takes the frozen disk copy; it records the frozen container", async () => {
  const container = await containerWithDisks();
  const checkpoint = await scratch();
  const frozenCopy = join(checkpoint, 'disk.raw');
  await writeFile(frozenCopy, 'ext4', { mode: 0o644 });
  await truncate(frozenCopy, 64 * 2 ** 20);
  const saved = await completeCheckpoint(
    checkpoint,
    'c1',
    { image: container.disks.image, writable: frozenCopy, writableBytes: 64 * 2 ** 20 },
    signal(),
    { imageStays: true, frozen: true },
  );
  assert.equal(saved.frozen, true);
  assert.deepEqual((await readdir(checkpoint)).sort(), ['disk.qcow2', 'image.erofs', 'inventory.img']);
  assert.deepEqual(
    (await readdir(container.disks.dir)).sort(),
    ['disk.raw', 'image.erofs'],
    "the running VM's disks stay where they are",
  );
  assert.equal((await stat(container.disks.image)).size, IMAGE_DISK_BYTES);
  assert.deepEqual(await restorableCheckpoint(checkpoint, 'c1', { 'dev.hull.rootfs': 'disk' }), saved);
  await assert.rejects(
    restorableCheckpoint(checkpoint, 'c1', {}),
    (err: unknown) =>
      isHullError(err, 'ERR_CONFIG') && /lacks the annotation dev.hull.rootfs=disk/.test(err.message),
  );
  await writeFile(join(checkpoint, 'inventory.img'), JSON.stringify({ ...saved, frozen: 'yes' }));
  await assert.rejects(readCheckpoint(checkpoint, 'c1'), /damaged/);
});

const refusedAs = (pattern: RegExp) => (err: unknown) =>
  isHullError(err, 'ERR_SAVED_STATE') &&
  pattern.test(err.message) &&
  !err.message.includes('\n') &&
  /left as it is$/.test(err.message);

/** A checkpoint made of a container with disks, as completeCheckpoint writes it. */
async function goodCheckpoint(): Promise<string> {
  const container = await containerWithDisks();
  const checkpoint = await scratch();
  await completeCheckpoint(
    checkpoint,
    'c1',
    { image: container.disks.image, writable: container.disks.writable, writableBytes: 64 * 2 ** 20 },
    signal(),
  );
  return checkpoint;
}

test('a record that is a symlink (to a host file, to /dev/zero), a FIFO or oversized is refused at once, without reading it', async () => {
  for (const kind of ['host file', '/dev/zero', 'fifo', 'large']) {
    const checkpoint = await goodCheckpoint();
    const path = join(checkpoint, 'inventory.img');
    const good = await readFile(path);
    await rm(path);
    if (kind === 'host file') {
      const elsewhere = join(await scratch(), 'record');
      await writeFile(elsewhere, good);
      await symlink(elsewhere, path);
    } else if (kind === '/dev/zero') await symlink('/dev/zero', path);
    else if (kind === 'fifo') await run('mkfifo', ['-m', '600', path]);
    else await writeFile(path, Buffer.concat([good, Buffer.alloc(2 ** 20, 0x20)]));
    await assert.rejects(
      readCheckpoint(checkpoint, 'c1'),
      refusedAs(/symlink|FIFO|larger than 65536 bytes/),
      kind,
    );
  }
});

test('record sizes no container has (an image larger than its disk, a writable disk out of bounds) are refused', async () => {
  for (const sizes of [
    { imageBytes: IMAGE_DISK_BYTES + 4096 },
    { imageBytes: -1 },
    { writableBytes: 2 ** 50 },
    { writableBytes: 64 * 2 ** 20 + 1 },
  ]) {
    const checkpoint = await goodCheckpoint();
    const path = join(checkpoint, 'inventory.img');
    const record = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify({ ...record, ...sizes }));
    await assert.rejects(readCheckpoint(checkpoint, 'c1'), refusedAs(/its inventory.img is damaged/));
  }
});

test("disks that are symlinks, hardlinks or FIFOs, or a qcow2 larger than recorded, are refused and nothing is put in the container's directory", async () => {
  const host = join(await scratch(), 'host-file');
  await writeFile(host, 'host secret');
  for (const [name, kind] of [
    ['image.erofs', 'symlink'],
    ['image.erofs', 'hardlink'],
    ['image.erofs', 'fifo'],
    ['disk.qcow2', 'symlink'],
    ['disk.qcow2', 'hardlink'],
    ['disk.qcow2', 'fifo'],
  ] as const) {
    const checkpoint = await goodCheckpoint();
    const saved = await readCheckpoint(checkpoint, 'c1');
    const path = join(checkpoint, name);
    const bytes = (await stat(path)).size;
    await rm(path);
    if (kind === 'symlink') await symlink(host, path);
    else if (kind === 'hardlink') {
      // A hardlink of the host file, of the size recorded.
      await truncate(host, bytes);
      await link(host, path);
    } else await run('mkfifo', ['-m', '600', path]);
    const target = await scratch();
    await assert.rejects(
      placeCheckpointDisks(checkpoint, saved, target, signal()),
      refusedAs(/not the one saved|lacks its root disks/),
      `${name} as a ${kind}`,
    );
    assert.equal(existsSync(bundleDiskPaths(target).writable), false);
  }
  // A qcow2 of a size beyond the record's, its record forged to match its hash: refused
  // before it is expanded on the host.
  const checkpoint = await goodCheckpoint();
  const saved = await readCheckpoint(checkpoint, 'c1');
  await rm(join(checkpoint, 'disk.qcow2'));
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(checkpoint, 'disk.qcow2'), '1T']);
  const target = await scratch();
  await assert.rejects(
    placeCheckpointDisks(
      checkpoint,
      { ...saved, writableSha256: await sha256Of(join(checkpoint, 'disk.qcow2')) },
      target,
      signal(),
    ),
    refusedAs(/is 1099511627776 bytes, 67108864 were saved: it is refused/),
  );
  assert.equal(existsSync(bundleDiskPaths(target).writable), false);
});

test('disks cut short or changed since the checkpoint (a qcow2 that would still convert, reading zeros) are refused by their hash', async () => {
  for (const [name, damage] of [
    ['disk.qcow2', 'truncated'],
    ['disk.qcow2', 'changed'],
    ['image.erofs', 'changed'],
  ] as const) {
    const checkpoint = await goodCheckpoint();
    const saved = await readCheckpoint(checkpoint, 'c1');
    const path = join(checkpoint, name);
    if (damage === 'truncated') await truncate(path, 4096);
    else {
      const bytes = await readFile(path);
      bytes[1100] = bytes[1100]! ^ 0xff;
      await writeFile(path, bytes);
    }
    const target = await scratch();
    await assert.rejects(
      placeCheckpointDisks(checkpoint, saved, target, signal()),
      refusedAs(/is not the one saved/),
      `${name} ${damage}`,
    );
    assert.equal(existsSync(bundleDiskPaths(target).writable), false);
  }
});
