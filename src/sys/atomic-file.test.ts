import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratchDir } from '../testing/scratch.js';
import { writeFileAtomic } from './atomic-file.js';

test('the file is written with the mode asked for, and nothing else is left in its directory', async () => {
  const dir = await scratchDir('hull-atomic-');
  const path = join(dir, 'record.json');
  await writeFileAtomic(path, '{"a":1}\n', { mode: 0o600 });
  assert.equal(await readFile(path, 'utf8'), '{"a":1}\n');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['record.json']);
});

test('a second write replaces the first whole', async () => {
  const dir = await scratchDir('hull-atomic-');
  const path = join(dir, 'pid');
  await writeFileAtomic(path, 'a much longer first content');
  await writeFileAtomic(path, Buffer.from('42'));
  assert.equal(await readFile(path, 'utf8'), '42');
  assert.deepEqual(await readdir(dir), ['pid']);
});

test('writers at the same time never mix their contents', async () => {
  const dir = await scratchDir('hull-atomic-');
  const path = join(dir, 'record.json');
  const contents = Array.from({ length: 20 }, (_, i) => `${String(i).repeat(10_000)}\n`);
  await Promise.all(contents.map((content) => writeFileAtomic(path, content)));
  assert.ok(contents.includes(await readFile(path, 'utf8')));
  assert.deepEqual(await readdir(dir), ['record.json']);
});

test('a file or symlink left at the target is replaced, not written through', async () => {
  const dir = await scratchDir('hull-atomic-');
  const elsewhere = join(dir, 'elsewhere');
  await writeFile(elsewhere, 'untouched');
  const path = join(dir, 'record.json');
  await symlink(elsewhere, path);
  await writeFileAtomic(path, 'new');
  assert.equal(await readFile(path, 'utf8'), 'new');
  assert.equal(await readFile(elsewhere, 'utf8'), 'untouched');
});

test('a write that fails leaves the old file as it was and no temporary file', async () => {
  const dir = await scratchDir('hull-atomic-');
  const path = join(dir, 'record.json');
  await writeFileAtomic(path, 'old');
  // A directory cannot be replaced by a file: the rename fails after the data was written.
  const taken = join(dir, 'taken');
  await mkdir(join(taken, 'inside'), { recursive: true });
  await assert.rejects(writeFileAtomic(taken, 'new'), { code: 'EISDIR' });
  assert.deepEqual((await readdir(dir)).sort(), ['record.json', 'taken']);
  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'record.json'), 'new'), { code: 'ENOENT' });
  assert.equal(await readFile(path, 'utf8'), 'old');
});

test('an aborted write leaves the old file and no temporary file', async () => {
  const dir = await scratchDir('hull-atomic-');
  const path = join(dir, 'record.json');
  await writeFileAtomic(path, 'old');
  await assert.rejects(writeFileAtomic(path, 'new', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(await readFile(path, 'utf8'), 'old');
  assert.deepEqual(await readdir(dir), ['record.json']);
});
