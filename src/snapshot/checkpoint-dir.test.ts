import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHullError } from '../errors.js';
import { bundleDiskPaths } from '../storage/bundle-disks.js';
import { IMAGE_DISK_BYTES } from '../storage/rootfs-disks.js';
import { completeCheckpoint, placeCheckpointDisks, readCheckpoint } from './checkpoint-dir.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
const signal = () => AbortSignal.timeout(30_000);

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
  await writeFile(disks.image, 'erofs');
  await truncate(disks.image, IMAGE_DISK_BYTES);
  await writeFile(disks.writable, 'ext4', { mode: 0o600 });
  await truncate(disks.writable, 64 * 2 ** 20);
  return { dir, disks };
}

test('a checkpoint holds the disks and its record; a restore puts them back and leaves the checkpoint whole', async () => {
  const container = await containerWithDisks();
  const checkpoint = await scratch();
  const record = await completeCheckpoint(
    checkpoint,
    'c1',
    { image: container.disks.image, writable: container.disks.writable, writableBytes: 64 * 2 ** 20 },
    signal(),
  );
  assert.deepEqual((await readdir(container.disks.dir)).sort(), []);
  assert.deepEqual((await readdir(checkpoint)).sort(), ['disk.raw', 'image.erofs', 'inventory.img']);
  assert.equal((await stat(join(checkpoint, 'disk.raw'))).mode & 0o777, 0o600);
  assert.deepEqual(await readCheckpoint(checkpoint, 'c1'), record);

  const restored = await scratch();
  const disks = await placeCheckpointDisks(checkpoint, record, restored, signal());
  assert.equal(disks.writableBytes, 64 * 2 ** 20);
  assert.equal((await stat(disks.writable)).size, 64 * 2 ** 20);
  assert.deepEqual((await readdir(checkpoint)).sort(), ['disk.raw', 'image.erofs', 'inventory.img']);
});

test('a checkpoint hull did not make (a runc one, or none) is refused in one line, and so are missing disks', async () => {
  const runc = await scratch();
  await writeFile(join(runc, 'inventory.img'), Buffer.from([0x54, 0x56, 0x00, 0x01]));
  const refusedAs = (pattern: RegExp) => (err: unknown) =>
    isHullError(err, 'ERR_SAVED_STATE') && pattern.test(err.message) && !err.message.includes('\n');
  await assert.rejects(readCheckpoint(runc, 'c1'), refusedAs(/not a checkpoint hull made/));
  await assert.rejects(readCheckpoint(await scratch(), 'c1'), refusedAs(/holds no inventory.img/));
  const record = {
    format: 'hull-checkpoint/1' as const,
    containerId: 'c1',
    writableBytes: 64 * 2 ** 20,
    checkpointedAt: '',
  };
  await writeFile(join(runc, 'inventory.img'), JSON.stringify(record));
  await assert.rejects(
    placeCheckpointDisks(runc, record, await scratch(), signal()),
    refusedAs(/lacks its root disks .*the checkpoint is left as it is$/),
  );
});
