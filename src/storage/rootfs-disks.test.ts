import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isHullError } from '../errors.js';
import { ROOTFS_DISK_ANNOTATION, ROOTFS_IMAGE_ANNOTATION } from '../oci/rootfs-annotations.js';
import { IMAGE_DISK_BYTES, makeWritableDisk, rootfsDisksOf } from './rootfs-disks.js';

let base: string;
let places: { imagesDir: string; root: string };
let image: string;
let disk: string;

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'rootfs-disks-'));
  places = { imagesDir: join(base, 'images'), root: join(base, 'root') };
  await mkdir(join(places.imagesDir, 'abc'), { recursive: true });
  await mkdir(join(places.root, 'sb'), { recursive: true });
  image = join(places.imagesDir, 'abc', 'rootfs.erofs');
  await writeFile(image, '');
  await truncate(image, IMAGE_DISK_BYTES);
  disk = join(places.root, 'sb', 'disk.raw');
  await writeFile(disk, '');
  await truncate(disk, 128 * 2 ** 20);
});

after(() => rm(base, { recursive: true, force: true }));

const refusedWith = (pattern: RegExp) => (err: unknown) =>
  isHullError(err, 'ERR_CONFIG') && pattern.test(err.message) && !err.message.includes('\n');

/** The container's own disk is the one named unless `ownDisk` says another. */
const of = (imagePath: string | undefined, diskPath: string | undefined, ownDisk = diskPath ?? disk) =>
  rootfsDisksOf(
    {
      ...(imagePath === undefined ? {} : { [ROOTFS_IMAGE_ANNOTATION]: imagePath }),
      ...(diskPath === undefined ? {} : { [ROOTFS_DISK_ANNOTATION]: diskPath }),
    },
    { ...places, ownDisk },
  );

test('a bundle without the annotations has its root in the share', async () => {
  assert.equal(await rootfsDisksOf(undefined, { ...places, ownDisk: disk }), undefined);
  assert.equal(await rootfsDisksOf({ other: 'x' }, { ...places, ownDisk: disk }), undefined);
});

test("the image under hull's image cache and the disk under the root are taken, with the disk's size", async () => {
  assert.deepEqual(await of(image, disk), { image, writable: disk, writableBytes: 128 * 2 ** 20 });
});

test('one annotation without the other is refused', async () => {
  await assert.rejects(of(image, undefined), refusedWith(/go together/));
  await assert.rejects(of(undefined, disk), refusedWith(/go together/));
});

test('files elsewhere, relative, with .., or swapped between places are refused', async () => {
  await assert.rejects(of('/etc/passwd', disk), refusedWith(/must be an absolute path under/));
  await assert.rejects(of(image, '/dev/sda'), refusedWith(/must be an absolute path under/));
  await assert.rejects(of('images/abc/rootfs.erofs', disk), refusedWith(/absolute path/));
  await assert.rejects(
    of(join(places.imagesDir, 'abc', '..', '..', 'root', 'sb', 'disk.raw'), disk),
    refusedWith(/absolute path/),
  );
  await assert.rejects(of(disk, image), refusedWith(/must be an absolute path under/));
  await assert.rejects(of(places.imagesDir, disk), refusedWith(/absolute path under|not a regular file/));
});

test("another container's disk under the root, though a regular file of a good size, is refused", async () => {
  // Another sandbox's disk: two guests would write it, or one read what is not its own.
  await assert.rejects(
    of(image, disk, join(places.root, 'other', 'disk.raw')),
    refusedWith(/is not this container's own disk: only hull serve names one/),
  );
});

test('a symlink, in the file or on the way to it, and a directory are refused', async () => {
  const link = join(places.root, 'sb', 'link.raw');
  await symlink('/etc/passwd', link);
  await assert.rejects(of(image, link), refusedWith(/not a regular file/));
  const dirLink = join(places.root, 'elsewhere');
  await symlink(join(places.imagesDir, 'abc'), dirLink);
  await assert.rejects(of(image, join(dirLink, 'rootfs.erofs')), refusedWith(/not a regular file/));
  await assert.rejects(of(image, join(places.root, 'sb')), refusedWith(/not a regular file/));
});

test('an image disk hull did not pad, and a disk of no allowed size, are refused', async () => {
  const small = join(places.imagesDir, 'abc', 'small.erofs');
  await writeFile(small, 'x');
  await assert.rejects(of(small, disk), refusedWith(/not an image disk hull made/));
  for (const bytes of [0, 2 ** 20, 128 * 2 ** 20 + 512, 65 * 2 ** 30]) {
    const odd = join(places.root, 'sb', `odd-${bytes}.raw`);
    await writeFile(odd, '');
    await truncate(odd, bytes);
    await assert.rejects(of(image, odd), refusedWith(/whole number of MiB from 64 to 65536/));
  }
});

test('a writable disk is made sparse, 0600, with ext4, and never over an existing file or symlink', async () => {
  const path = join(places.root, 'sb', 'new.raw');
  await makeWritableDisk(path, 64, AbortSignal.timeout(30_000));
  const info = await lstat(path);
  assert.equal(info.size, 64 * 2 ** 20);
  assert.equal(info.mode & 0o777, 0o600);
  assert.ok(info.blocks * 512 < 16 * 2 ** 20, `sparse: ${info.blocks * 512} bytes allocated`);
  await assert.rejects(makeWritableDisk(path, 64, AbortSignal.timeout(30_000)), { code: 'EEXIST' });
  const link = join(places.root, 'sb', 'to-passwd.raw');
  await symlink('/etc/passwd', link);
  await assert.rejects(makeWritableDisk(link, 64, AbortSignal.timeout(30_000)), { code: 'EEXIST' });
});
