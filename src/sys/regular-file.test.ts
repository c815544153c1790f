import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { scratchDir } from '../testing/scratch.js';
import { readJsonRecordOrNone, readRegularFile } from './regular-file.js';

const LIMITS = {
  maxBytes: 1024,
  why: 'a test file is small',
  code: 'ERR_CONFIG',
  missing: 'is missing',
} as const;

/** The one-line refusal, which must come within a second (a FIFO must not hang the reader). */
async function refusal(path: string): Promise<string> {
  const err = await Promise.race([
    readRegularFile(path, LIMITS).then(
      () => assert.fail('the file was read'),
      (e: unknown) => e,
    ),
    new Promise((_, reject) => setTimeout(() => reject(new Error('the read hangs')), 1000).unref()),
  ]);
  assert.ok(isHullError(err, 'ERR_CONFIG'), String(err));
  return err.message;
}

test('a regular file is read whole', async () => {
  const dir = await scratchDir('regular-file-');
  await writeFile(join(dir, 'config.json'), '{"a": 1}');
  assert.equal(await readRegularFile(join(dir, 'config.json'), LIMITS), '{"a": 1}');
});

test('issue 24: /dev/zero, a directory, a FIFO or a large file is refused without reading it', async () => {
  const dir = await scratchDir('regular-file-');
  await symlink('/dev/zero', join(dir, 'zero.json'));
  assert.match(await refusal(join(dir, 'zero.json')), /zero\.json is a device, not a regular file/);
  await mkdir(join(dir, 'dir.json'));
  assert.match(await refusal(join(dir, 'dir.json')), /dir\.json is a directory, not a regular file/);
  execFileSync('mkfifo', [join(dir, 'fifo.json')]);
  assert.match(await refusal(join(dir, 'fifo.json')), /fifo\.json is a FIFO, not a regular file/);
  await writeFile(join(dir, 'big.json'), '');
  await truncate(join(dir, 'big.json'), 2 ** 30);
  assert.match(
    await refusal(join(dir, 'big.json')),
    /big\.json is larger than 1024 bytes \(a test file is small\)/,
  );
  assert.match(await refusal(join(dir, 'none.json')), /none\.json is missing$/);
});

test('a JSON record is parsed; one missing, refused or not JSON is none', async () => {
  const dir = await scratchDir('regular-file-');
  await writeFile(join(dir, 'record.json'), '{"a": 1}');
  assert.deepEqual(await readJsonRecordOrNone(join(dir, 'record.json'), LIMITS), { a: 1 });
  await writeFile(join(dir, 'torn.json'), '{"a": ');
  assert.equal(await readJsonRecordOrNone(join(dir, 'torn.json'), LIMITS), undefined);
  execFileSync('mkfifo', [join(dir, 'fifo.json')]);
  assert.equal(await readJsonRecordOrNone(join(dir, 'fifo.json'), LIMITS), undefined);
  assert.equal(await readJsonRecordOrNone(join(dir, 'none.json'), LIMITS), undefined);
});
