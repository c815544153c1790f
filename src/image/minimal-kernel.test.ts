import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isHullError } from '../errors.js';
import { scratchDir } from '../testing/scratch.js';
import {
  checkFragmentApplied,
  kernelMakeVariables,
  minimalKernelFragments,
  minimalKernelKeyOf,
  parseConfig,
} from './minimal-kernel.js';

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

const KERNEL_CONFIGS = fileURLToPath(new URL('../../../guest/image/kernel', import.meta.url));

test("an arm64 minimal kernel is cross-built with Debian's cross compiler; the host's needs nothing", () => {
  assert.deepEqual(kernelMakeVariables('arm64', 'x86_64'), [
    'ARCH=arm64',
    'CROSS_COMPILE=aarch64-linux-gnu-',
  ]);
  assert.deepEqual(kernelMakeVariables('x86_64', 'arm64'), ['ARCH=x86', 'CROSS_COMPILE=x86_64-linux-gnu-']);
  assert.deepEqual(kernelMakeVariables('x86_64', 'x86_64'), []);
  assert.deepEqual(kernelMakeVariables('arm64', 'arm64'), []);
});

test("arm64's fragment comes after the common one and overrides what is x86's alone", async () => {
  const fragments = minimalKernelFragments(KERNEL_CONFIGS, 'arm64');
  assert.deepEqual(
    fragments.map((f) => f.split('/').pop()),
    ['minimal.config', 'minimal-arm64.config'],
  );
  assert.deepEqual(
    minimalKernelFragments(KERNEL_CONFIGS, 'x86_64').map((f) => f.split('/').pop()),
    ['minimal.config'],
  );
  const arm64 = parseConfig(await readFile(fragments[1]!, 'utf8'));
  for (const option of ['CONFIG_SERIAL_AMBA_PL011_CONSOLE', 'CONFIG_RTC_DRV_PL031', 'CONFIG_ARM_PSCI_FW'])
    assert.equal(arm64.get(option), 'y', option);
  assert.equal(arm64.get('CONFIG_RTC_DRV_CMOS'), 'n', "the PC clock, set by the common fragment, is x86's");

  // A .config with the override applied passes; the common fragment's value would not be wanted.
  const dir = await scratchDir('hull-kconfig-');
  await writeFile(join(dir, 'common'), 'CONFIG_RTC_DRV_CMOS=y\nCONFIG_VIRTIO_MMIO=y\n');
  await writeFile(join(dir, 'arm64'), 'CONFIG_RTC_DRV_CMOS=n\nCONFIG_RTC_DRV_PL031=y\n');
  await writeFile(
    join(dir, '.config'),
    '# CONFIG_RTC_DRV_CMOS is not set\nCONFIG_VIRTIO_MMIO=y\nCONFIG_RTC_DRV_PL031=y\n',
  );
  await checkFragmentApplied([join(dir, 'common'), join(dir, 'arm64')], join(dir, '.config'));
  await writeFile(
    join(dir, '.config'),
    'CONFIG_RTC_DRV_CMOS=y\nCONFIG_VIRTIO_MMIO=y\nCONFIG_RTC_DRV_PL031=y\n',
  );
  await assert.rejects(
    checkFragmentApplied([join(dir, 'common'), join(dir, 'arm64')], join(dir, '.config')),
    /dropped CONFIG_RTC_DRV_CMOS=n:/,
  );
});

test("x86_64's minimal kernel keeps its cache key; arm64's is its own", () => {
  const fragment = 'CONFIG_A=y\n';
  const before = createHash('sha256')
    .update(`linux-source-6.1=6.1.1-1\n${fragment}`)
    .digest('hex')
    .slice(0, 16);
  assert.equal(minimalKernelKeyOf('6.1.1-1', 'x86_64', [fragment]), before);
  const arm64 = minimalKernelKeyOf('6.1.1-1', 'arm64', [fragment, 'CONFIG_B=y\n']);
  assert.notEqual(arm64, before);
  assert.notEqual(arm64, minimalKernelKeyOf('6.1.1-1', 'arm64', [fragment, 'CONFIG_B=n\n']));
});
