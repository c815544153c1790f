import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HostMounter } from '../../src/sys/mount.js';
import { privateDirs } from './harness.js';

/**
 * hull-share-mount's commands joined in one run (HostMounter.inOrder, unmountTree): each as
 * strict as alone, the first that fails ends the run, and a tree comes down in one run.
 */
test('mount steps in one helper run: done in order, stopped at the first refused, unmounted together', async () => {
  const dirs = await privateDirs('share-mount');
  const mounter = new HostMounter();
  const share = join(dirs.scratch, 'shared');
  const rootfs = join(dirs.scratch, 'rootfs');
  try {
    await mkdir(share);
    await mkdir(rootfs);
    await writeFile(join(rootfs, 'hello'), 'hi\n');
    await mounter.inOrder([
      { step: 'makeSharedMountPoint', dir: share },
      { step: 'makeMountPoints', rootfs, points: [{ path: '/data', kind: 'dir' }] },
      {
        step: 'bindBeneath',
        dir: share,
        rel: 'c1/rootfs',
        source: rootfs,
        options: { recursive: true, kind: 'dir', readonly: true },
      },
    ]);
    assert.deepEqual((await readdir(rootfs)).sort(), ['data', 'hello'], 'the mount point was made');
    assert.deepEqual(await mounter.mountsUnder(share), [join(share, 'c1/rootfs'), share]);
    await assert.rejects(writeFile(join(share, 'c1/rootfs/new'), 'x'), { code: 'EROFS' });

    // A symlink in the path (as a guest can make) refuses that step and every one after it.
    await symlink(dirs.scratch, join(share, 'c1', 'link'));
    await assert.rejects(
      mounter.inOrder([
        {
          step: 'bindBeneath',
          dir: share,
          rel: 'c1/link/escaped',
          source: rootfs,
          options: { recursive: false, kind: 'dir' },
        },
        {
          step: 'bindBeneath',
          dir: share,
          rel: 'c2/rootfs',
          source: rootfs,
          options: { recursive: false, kind: 'dir' },
        },
      ]),
      (err: Error & { code?: string }) => err.code === 'ERR_MOUNT' && /symbolic links/.test(err.message),
    );
    assert.deepEqual(await mounter.mountsUnder(dirs.scratch), [join(share, 'c1/rootfs'), share]);
    assert.deepEqual((await readdir(dirs.scratch)).includes('escaped'), false, 'nothing was made outside');

    await mounter.unmountTree(share);
    assert.deepEqual(await mounter.mountsUnder(dirs.scratch), []);
  } finally {
    await mounter.unmountTree(share).catch(() => {});
    await dirs.cleanup();
  }
});
