import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sharedLibraries, stageBinary } from './stage.js';

test('stageBinary stages a program with its libraries and names every file it staged', async () => {
  const stage = await mkdtemp(join(tmpdir(), 'hull-stage-'));
  try {
    const files = await stageBinary(stage, '/bin/ls', '/usr/bin/ls');
    assert.equal(files[0], '/usr/bin/ls');
    assert.deepEqual(files.slice(1), await sharedLibraries('/bin/ls'));
    assert.ok(
      files.some((f) => f.includes('libc.so')),
      `libc is among ${files.join(', ')}`,
    );
    for (const file of files) await access(join(stage, file));
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
});
