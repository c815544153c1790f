import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratchDir } from '../testing/scratch.js';
import { readRecordDirs, removeRecordDir } from './record-dirs.js';

test('records are read from the directories named as IDs; one without a record is incomplete', async () => {
  const root = await scratchDir('hull-record-dirs-');
  const kindDir = join(root, '@serve', 'things');
  for (const name of ['t-1', 't-2', 't-3', 'other']) await mkdir(join(kindDir, name), { recursive: true });
  await writeFile(join(kindDir, 't-1', 'thing.json'), '{"id":"t-1"}');
  await writeFile(join(kindDir, 't-3', 'thing.json'), '{"id":'); // cut short while written
  await writeFile(join(kindDir, 'other', 'thing.json'), '{"id":"other"}');
  const { records, incomplete } = await readRecordDirs<{ id: string }>(kindDir, /^t-\d$/, 'thing.json');
  assert.deepEqual(records, [{ id: 't-1' }]);
  assert.deepEqual(incomplete.sort(), ['t-2', 't-3']);
  assert.deepEqual(await readRecordDirs(join(root, 'missing'), /^t-\d$/, 'thing.json'), {
    records: [],
    incomplete: [],
  });
});

test('removing the last directory of a root leaves nothing of serve in it', async () => {
  const root = await scratchDir('hull-record-dirs-');
  const kindDir = join(root, '@serve', 'things');
  await mkdir(join(kindDir, 't-1'), { recursive: true });
  await mkdir(join(kindDir, 't-2'), { recursive: true });
  await writeFile(join(kindDir, 't-1', 'thing.json'), '{}');
  await removeRecordDir(join(kindDir, 't-1'));
  assert.deepEqual(await readdir(kindDir), ['t-2']);
  await removeRecordDir(join(kindDir, 't-2'));
  assert.deepEqual(await readdir(root), []);
});
