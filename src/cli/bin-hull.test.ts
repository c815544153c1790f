import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// bin/hull and the shim's script in the repository, from dist/src/cli/.
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const version = (JSON.parse(readFileSync(`${repo}package.json`, 'utf8')) as { version: string }).version;

for (const command of ['bin/hull', 'bin/containerd-shim-hull-v2']) {
  test(`${command} starts Node without NODE_EXTRA_CA_CERTS, which no hull process needs`, () => {
    // Node reads the file as it starts, and says so on stderr when it cannot: the warning is
    // the sign that Node was given the variable.
    const child = spawnSync(`${repo}${command}`, ['--version'], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/hull-test-ca.pem' },
      encoding: 'utf8',
    });
    assert.doesNotMatch(child.stderr, /extra certs/);
    if (command === 'bin/hull') {
      assert.equal(child.status, 0, child.stderr);
      assert.equal(child.stdout.trim(), version);
    }
  });
}
