import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { mallocTrimAddonPath, trimMalloc } from './malloc-trim.js';

test('the malloc_trim addon loads and answers whether it gave memory back', () => {
  assert.ok(existsSync(mallocTrimAddonPath()), 'built with the host programs');
  const kept = Array.from({ length: 10_000 }, (_, i) => ({ i, text: `value ${i}` }));
  assert.equal(typeof trimMalloc(), 'boolean');
  // The full collection it asks V8 for, in the middle of JavaScript, keeps what is live.
  assert.equal(kept[9_999]!.text, 'value 9999');
  assert.equal(typeof trimMalloc(), 'boolean');
});

test('a pending trim, idle or soon, does not keep a process alive', () => {
  const started = Date.now();
  const child = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { TrimWhenIdle } from ${JSON.stringify(new URL('./malloc-trim.js', import.meta.url).href)};
       const trimmer = new TrimWhenIdle();
       trimmer.busy();
       trimmer.soon();`,
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  assert.ok(Date.now() - started < 4_000, 'it exits before the idle delay');
});
