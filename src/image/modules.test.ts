import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { scratchDir } from '../testing/scratch.js';
import { parseDepends, parseModuleList, resolveLoadOrder } from './modules.js';

/** A stand-in .ko: what matters to the resolver is the NUL-separated .modinfo strings. */
async function fakeModule(root: string, path: string, depends: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(
    join(root, path),
    Buffer.from(`\x7fELF...\0license=GPL\0depends=${depends}\0name=x\0`, 'latin1'),
  );
}

test('depends= is read from the module info strings', () => {
  assert.deepEqual(parseDepends(Buffer.from('\0depends=virtio,virtio_ring\0', 'latin1')), [
    'virtio',
    'virtio_ring',
  ]);
  assert.deepEqual(parseDepends(Buffer.from('\0depends=\0', 'latin1')), []);
  assert.deepEqual(parseDepends(Buffer.from('no info', 'latin1')), []);
});

test('dependencies load first, each once; built-in modules are skipped; soft dependencies count', async () => {
  const root = await scratchDir('hull-mods-');
  await fakeModule(root, 'kernel/drivers/virtio/virtio.ko', '');
  await fakeModule(root, 'kernel/drivers/virtio/virtio_ring.ko', 'virtio');
  await fakeModule(root, 'kernel/drivers/virtio/virtio_mmio.ko', 'virtio,virtio_ring');
  await fakeModule(root, 'kernel/drivers/block/virtio_blk.ko', 'virtio,virtio_ring');
  await fakeModule(root, 'kernel/crypto/crc32c_generic.ko', '');
  await fakeModule(root, 'kernel/lib/libcrc32c.ko', '');
  await fakeModule(root, 'kernel/fs/erofs/erofs.ko', 'libcrc32c');
  const order = await resolveLoadOrder(root, ['virtio_mmio', 'virtio_blk', 'erofs', 'builtin_thing']);
  assert.deepEqual(
    order.map((m) => m.name),
    ['virtio', 'virtio_ring', 'virtio_mmio', 'virtio_blk', 'crc32c_generic', 'libcrc32c', 'erofs'],
  );
  assert.equal(order[2]!.path, 'kernel/drivers/virtio/virtio_mmio.ko');
});

test('a dependency the kernel lacks is an image build error', async () => {
  const root = await scratchDir('hull-mods-');
  await fakeModule(root, 'kernel/fs/9p/9p.ko', '9pnet');
  await assert.rejects(resolveLoadOrder(root, ['9p']), (err: unknown) => isHullError(err, 'ERR_IMAGE_BUILD'));
});

test('module lists ignore comments and blank lines', () => {
  assert.deepEqual(parseModuleList('# boot\nvirtio_mmio\n\n  erofs # root\n'), ['virtio_mmio', 'erofs']);
});
