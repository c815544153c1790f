import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { isHullError } from '../errors.js';
import { RecordingMounter } from '../sys/mount.js';
import { type ContainerFiles, SandboxShare } from './share.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hull-share-'));
  await mkdir(join(dir, 'bundle', 'rootfs'), { recursive: true });
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A read-only root with bind mounts of a directory and of files, among other mounts. */
function sampleContainer(): ContainerFiles {
  return {
    id: 'c1',
    root: { path: join(dir, 'bundle', 'rootfs'), readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/data', type: 'bind', source: join(dir, 'data'), options: ['rbind', 'rw'] },
      { destination: '/etc/hosts', type: 'none', source: join(dir, 'hosts'), options: ['bind', 'ro'] },
      { destination: '/etc/hostname', type: 'bind', source: join(dir, 'hosts'), options: ['ro', 'rw'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm' },
    ],
    bundleDir: join(dir, 'bundle'),
  };
}

test('rootfs and bind sources are bind-mounted into the share, other mounts left alone', async () => {
  const mounter = new RecordingMounter();
  const share = new SandboxShare(join(dir, 'share'), mounter);
  await share.prepare();
  const placement = await share.addContainer(sampleContainer());
  assert.deepEqual(placement, {
    rootfsSharePath: 'c1/rootfs',
    sharedMounts: [
      { index: 1, sharePath: 'c1/mounts/1' },
      { index: 2, sharePath: 'c1/mounts/2' },
      { index: 3, sharePath: 'c1/mounts/3' },
    ],
  });
  assert.deepEqual(mounter.calls, [
    // Its own mount point, so mounts made in it reach the VMM's mount namespace.
    `shared ${join(dir, 'share')}`,
    // The root is read-only: its mount points are made before it is bound (but those inside
    // another mount: /dev/shm is made in /dev's tmpfs).
    `mountpoints ${join(dir, 'bundle', 'rootfs')} dir:/proc dir:/data file:/etc/hosts file:/etc/hostname dir:/dev`,
    // Read-only ones read-only on the host too: the last of ro and rw decides.
    `rbind ro ${join(dir, 'bundle', 'rootfs')} ${join(dir, 'share', 'c1', 'rootfs')}`,
    `rbind ${join(dir, 'data')} ${join(dir, 'share', 'c1', 'mounts', '1')}`,
    `bind ro ${join(dir, 'hosts')} ${join(dir, 'share', 'c1', 'mounts', '2')}`,
    `bind ${join(dir, 'hosts')} ${join(dir, 'share', 'c1', 'mounts', '3')}`,
  ]);
  assert.ok(
    (await stat(join(dir, 'share', 'c1', 'mounts', '2'))).isFile(),
    'a file source gets a file target',
  );
  await share.destroy();
  await assert.rejects(stat(join(dir, 'share')));
  assert.equal(mounter.calls.filter((c) => c.startsWith('umount')).length, 5);
});

test('a missing bind source is a config error and leaves nothing mounted', async () => {
  const mounter = new RecordingMounter();
  const share = new SandboxShare(join(dir, 'share'), mounter);
  await share.prepare();
  await assert.rejects(
    share.addContainer({
      id: 'c1',
      root: { path: join(dir, 'bundle', 'rootfs') },
      mounts: [{ destination: '/x', type: 'bind', source: join(dir, 'nope') }],
      bundleDir: join(dir, 'bundle'),
    }),
    (err: unknown) => isHullError(err, 'ERR_CONFIG') && /nope.*does not exist/.test(err.message),
  );
  assert.deepEqual(
    await mounter.mountsUnder(join(dir, 'share')),
    [join(dir, 'share')],
    'only the share itself',
  );
  await assert.rejects(stat(join(dir, 'share', 'c1')));
});

test('a share whose mount will not go away is not removed', async () => {
  const mounter = new RecordingMounter();
  mounter.unmountTree = async () => {};
  const share = new SandboxShare(join(dir, 'share'), mounter);
  await share.prepare();
  await share.addContainer({
    id: 'c1',
    root: { path: join(dir, 'bundle', 'rootfs') },
    mounts: [],
    bundleDir: join(dir, 'bundle'),
  });
  await assert.rejects(share.destroy(), (err: unknown) => isHullError(err, 'ERR_MOUNT'));
  assert.ok((await stat(join(dir, 'share', 'c1', 'rootfs'))).isDirectory());
});

test('the share and its first container are made in one helper run, the share first', async () => {
  const apart = new RecordingMounter();
  const shareApart = new SandboxShare(join(dir, 'apart'), apart);
  await shareApart.prepare();
  const placedApart = await shareApart.addContainer(sampleContainer());
  const together = new RecordingMounter();
  const share = new SandboxShare(join(dir, 'share'), together);
  const placed = await share.prepare(sampleContainer());
  assert.deepEqual(placed, placedApart);
  assert.equal(together.runs, 1);
  assert.equal(apart.runs, 2);
  assert.deepEqual(
    together.calls,
    apart.calls.map((call) => call.replaceAll(join(dir, 'apart'), join(dir, 'share'))),
  );
  assert.equal(together.calls[0], `shared ${join(dir, 'share')}`);
  await share.destroy();
  await shareApart.destroy();
});

test('a first container that cannot be placed fails the share before anything is mounted', async () => {
  const mounter = new RecordingMounter();
  const share = new SandboxShare(join(dir, 'share'), mounter);
  await assert.rejects(
    share.prepare({
      ...sampleContainer(),
      mounts: [{ destination: '/x', type: 'bind', source: join(dir, 'nope') }],
    }),
    (err: unknown) => isHullError(err, 'ERR_CONFIG') && /nope.*does not exist/.test(err.message),
  );
  assert.equal(mounter.runs, 0);
  await share.destroy();
  await assert.rejects(stat(join(dir, 'share')));
});
