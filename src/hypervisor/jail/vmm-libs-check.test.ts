import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { vmmLibrariesUsable } from './vmm-libs-check.js';

const scratch = await mkdtemp(join(tmpdir(), 'hull-vmm-libs-check-'));
after(() => rm(scratch, { recursive: true, force: true }));
const libraryDir = join(scratch, 'vmm-libs');
await mkdir(libraryDir);
await writeFile(join(libraryDir, 'libcapstone.so.4'), 'stand-in');

/**
 * A fake QEMU that counts its runs in `<path>.runs`; one that `breaks` fails as the dynamic
 * loader does when a library in LD_LIBRARY_PATH lacks a symbol it imports.
 */
async function fakeQemu(name: string, breaks: boolean): Promise<string> {
  const path = join(scratch, name);
  const failure = breaks
    ? `[ -n "$LD_LIBRARY_PATH" ] && [ "$LD_BIND_NOW" = 1 ] && { echo "${path}: symbol lookup error: ${path}: undefined symbol: cs_new_api" >&2; exit 127; }`
    : '';
  await writeFile(
    path,
    `#!/bin/sh\necho run >> "${path}.runs"\n${failure}\necho "QEMU emulator version 9.2.0"\n`,
  );
  await chmod(path, 0o755);
  return path;
}

async function runs(qemu: string): Promise<number> {
  return (await readFile(`${qemu}.runs`, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
}

const signal = new AbortController().signal;

test('a QEMU that starts with the stand-ins may use them; one the loader refuses may not', async () => {
  const cache = join(scratch, 'answers-1.json');
  assert.equal(await vmmLibrariesUsable(await fakeQemu('good', false), libraryDir, signal, cache), true);
  assert.equal(await vmmLibrariesUsable(await fakeQemu('bad', true), libraryDir, signal, cache), false);
});

test('each binary is run once, and its answer is read back from the cache file', async () => {
  const cache = join(scratch, 'answers-2.json');
  const good = await fakeQemu('good-2', false);
  const bad = await fakeQemu('bad-2', true);
  for (let i = 0; i < 3; i++) {
    assert.equal(await vmmLibrariesUsable(good, libraryDir, signal, cache), true);
    assert.equal(await vmmLibrariesUsable(bad, libraryDir, signal, cache), false);
  }
  assert.equal(await runs(good), 1);
  assert.equal(await runs(bad), 1);
  // Another process (another cache key in memory here: a copy of the file) reads the answers.
  const copy = join(scratch, 'answers-2-copy.json');
  await writeFile(copy, await readFile(cache));
  assert.equal(await vmmLibrariesUsable(good, libraryDir, signal, copy), true);
  assert.equal(await vmmLibrariesUsable(bad, libraryDir, signal, copy), false);
  assert.equal(await runs(good), 1);
  assert.equal(await runs(bad), 1);
});

test('a changed binary is checked again', async () => {
  const cache = join(scratch, 'answers-3.json');
  const qemu = await fakeQemu('upgraded', false);
  assert.equal(await vmmLibrariesUsable(qemu, libraryDir, signal, cache), true);
  // An upgrade that imports a symbol the stand-in lacks: same path, new contents and time.
  await fakeQemu('upgraded', true);
  const later = new Date(Date.now() + 5000);
  await utimes(qemu, later, later);
  assert.equal(await vmmLibrariesUsable(qemu, libraryDir, signal, cache), false);
  assert.equal(await runs(qemu), 2);
});

test('a malformed cache file is ignored and rewritten', async () => {
  const cache = join(scratch, 'answers-4.json');
  await writeFile(cache, '{ not json');
  const qemu = await fakeQemu('good-4', false);
  assert.equal(await vmmLibrariesUsable(qemu, libraryDir, signal, cache), true);
  const written = JSON.parse(await readFile(cache, 'utf8')) as Record<string, boolean>;
  assert.deepEqual(Object.values(written), [true]);
});

test('a check that hangs ends when the start is cancelled', async () => {
  const qemu = join(scratch, 'hangs');
  await writeFile(qemu, '#!/bin/sh\nexec sleep 60\n');
  await chmod(qemu, 0o755);
  const controller = new AbortController();
  const check = vmmLibrariesUsable(qemu, libraryDir, controller.signal, join(scratch, 'answers-5.json'));
  setTimeout(() => controller.abort(new Error('start cancelled')), 100);
  await assert.rejects(check, /start cancelled/);
});
