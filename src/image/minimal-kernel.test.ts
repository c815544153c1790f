import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { scratchDir } from '../testing/scratch.js';
import { checkFragmentApplied, parseConfig } from './minimal-kernel.js';

test('config lines and "is not set" comments are read', () => {
  assert.deepEqual(
    [...parseConfig('# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x"\n')],
    [
      ['CONFIG_A', 'y'],
      ['CONFIG_B', 'n'],
      ['CONFIG_C', '"x"'],
    ],
  );
});

test('an option Kconfig dropped fails the build early, by name', async () => {
  const dir = await scratchDir('hull-kconfig-');
  await writeFile(join(dir, 'fragment'), 'CONFIG_EROFS_FS=y\nCONFIG_RD_GZIP=n\nCONFIG_9P_FS=y\n');
  await writeFile(join(dir, '.config'), '# CONFIG_EROFS_FS is not set\nCONFIG_9P_FS=y\n');
  await assert.rejects(
    checkFragmentApplied(join(dir, 'fragment'), join(dir, '.config')),
    (err: unknown) => isHullError(err, 'ERR_IMAGE_BUILD') && /dropped CONFIG_EROFS_FS=y:/.test(err.message),
  );
  await writeFile(join(dir, '.config'), 'CONFIG_EROFS_FS=y\nCONFIG_9P_FS=y\n');
  await checkFragmentApplied(join(dir, 'fragment'), join(dir, '.config'));
});
