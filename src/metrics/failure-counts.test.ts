import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratchDir } from '../testing/scratch.js';
import { countFailure, failureCounts } from './failure-counts.js';

test('failures are counted by code per runtime root, side by side, and only recent roots are kept', async () => {
  const state = await scratchDir('hull-failures-');
  process.env.HULL_STATE_DIR = state;
  try {
    const signal = AbortSignal.timeout(10_000);
    await Promise.all([
      ...Array.from({ length: 5 }, () => countFailure('/run/a', 'ERR_NOT_FOUND', signal)),
      countFailure('/run/a', 'ERR_CONFIG', signal),
      countFailure('/run/b/', 'ERR_NOT_FOUND', signal),
    ]);
    assert.deepEqual(await failureCounts('/run/a'), { ERR_NOT_FOUND: 5, ERR_CONFIG: 1 });
    assert.deepEqual(await failureCounts('/run/b'), { ERR_NOT_FOUND: 1 }, 'the same root, however written');
    for (let i = 0; i < 40; i++) await countFailure(`/run/many-${i}`, 'ERR_USAGE', signal);
    const table = JSON.parse(await readFile(join(state, 'metrics', 'failures.json'), 'utf8'));
    assert.equal(Object.keys(table.roots).length, 32, 'the file stays bounded');
    assert.deepEqual(await failureCounts('/run/many-39'), { ERR_USAGE: 1 });
    assert.deepEqual(await failureCounts('/run/a'), {}, 'the oldest root gave way');
  } finally {
    delete process.env.HULL_STATE_DIR;
  }
});
