import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type JailPlan, jailArgs, vmmLibraryDir } from './jail.js';

function plan(extra: Partial<JailPlan> = {}): JailPlan {
  return {
    root: '/run/hull/x/vm/root',
    uid: 3_000_000_001,
    readOnly: ['/usr'],
    symlinks: ['/lib'],
    readWrite: [],
    devices: ['/dev/null'],
    cgroupProcs: [],
    hugePages: false,
    ...extra,
  };
}

/** The value after each occurrence of `option` in argv. */
function valuesOf(argv: string[], option: string): string[] {
  return argv.flatMap((arg, i) => (arg === option ? [argv[i + 1]!] : []));
}

test("the VMM's library directory is in its root, read-only, and first in its loader's path", () => {
  const dir = vmmLibraryDir();
  const argv = jailArgs(plan({ libraryPath: dir }), '/usr/bin/qemu-system-x86_64', ['-nodefaults']);
  assert.deepEqual(valuesOf(argv, '--library-path'), [dir]);
  assert.ok(valuesOf(argv, '--ro').includes(dir), 'bound read-only into the new root');
  assert.ok(!valuesOf(argv, '--rw').includes(dir));
  // Options before the program: nothing of them reaches QEMU's argv.
  assert.deepEqual(argv.slice(argv.indexOf('--') + 1), ['/usr/bin/qemu-system-x86_64', '-nodefaults']);
});

test('without a library directory the VMM gets none', () => {
  const argv = jailArgs(plan(), '/usr/bin/qemu-system-x86_64', []);
  assert.deepEqual(valuesOf(argv, '--library-path'), []);
  assert.deepEqual(valuesOf(argv, '--ro'), ['/usr']);
});
