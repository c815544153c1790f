import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const MODULE = pathToFileURL(new URL('./inherited-fds.js', import.meta.url).pathname).href;

/**
 * Runs a node that inherits fd 251 without close-on-exec from a shell, as hull inherits one
 * from conmon (Node marks low descriptors close-on-exec itself, not that one); prints whether
 * it still has it after closing, and whether the helper mark is left.
 */
function fdsLeft(env: NodeJS.ProcessEnv): Promise<string> {
  const script = `
    const { closeInheritedDescriptors } = await import(${JSON.stringify(MODULE)});
    const { readdirSync, existsSync } = await import('node:fs');
    closeInheritedDescriptors();
    console.log([251].filter((fd) => existsSync('/proc/self/fd/' + fd)).join(',') + ' ' + (process.env.HULL_HELPER_CHANNEL ?? '-'));
  `;
  const child = spawn(
    'bash',
    ['-c', 'exec 251</dev/null; exec "$0" --input-type=module -e "$1"', process.execPath, script],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  return new Promise((resolve) => child.on('close', () => resolve(out.trim())));
}

test('descriptors inherited without close-on-exec are closed, and the helper mark does not pass on', async () => {
  assert.equal(await fdsLeft({}), '-');
  assert.equal(await fdsLeft({ HULL_HELPER_CHANNEL: '3' }), '-');
});
