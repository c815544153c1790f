import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bundleTests, hull, hullDetached } from './harness.js';

/** The guest's memory as the container sees it, in MiB. */
async function guestMemTotalMiB(root: string, id: string, env: NodeJS.ProcessEnv): Promise<number> {
  const r = await hull(['--root', root, 'exec', id, 'cat', '/proc/meminfo'], { env });
  assert.equal(r.code, 0, r.stderr);
  return Number(/MemTotal:\s+(\d+) kB/.exec(r.stdout)![1]) / 1024;
}

/** Issue 13: /etc/hull/config.toml, --config and HULL_CONFIG. */
describe('the configuration file', { timeout: 600_000 }, () => {
  const t = bundleTests('config');

  test('its VM size reaches the monitor a detached container starts; the environment overrides it', async () => {
    const file = join(t.scratch, 'config.toml');
    await writeFile(file, '# hull test\n[vm]\nmemory_mib = 320\n[log]\nformat = "json"\n');
    const shown = await hull(['--config', file, 'env']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`settings \\(configuration file: ${file}\\)`));
    assert.match(shown.stdout, /HULL_MEMORY_MIB=320 \(file; vm.memory_mib in the file\)/);
    assert.match(shown.stdout, /default VM size: 1 vCPU, 320 MiB/);

    const fromFile = await t.bundle(['sleep', '1000']);
    const fromEnv = await t.bundle(['sleep', '1000']);
    assert.equal(
      (await hullDetached(t.root, ['--bundle', fromFile.dir, fromFile.id], { HULL_CONFIG: file })).code,
      0,
    );
    const overridden = await hullDetached(t.root, ['--bundle', fromEnv.dir, fromEnv.id], {
      HULL_CONFIG: file,
      HULL_MEMORY_MIB: '400',
    });
    assert.equal(overridden.code, 0, overridden.stderr);
    try {
      const a = await guestMemTotalMiB(t.root, fromFile.id, { HULL_CONFIG: file });
      const b = await guestMemTotalMiB(t.root, fromEnv.id, { HULL_CONFIG: file });
      // The kernel keeps some for itself: MemTotal is a little under the VM's size.
      assert.ok(a > 250 && a <= 320, `a 320 MiB VM from the file: MemTotal ${a} MiB`);
      assert.ok(b > 330 && b <= 400, `HULL_MEMORY_MIB=400 wins over the file: MemTotal ${b} MiB`);
    } finally {
      for (const id of [fromFile.id, fromEnv.id]) await hull(['--root', t.root, 'delete', '--force', id]);
    }
  });

  test('a bad file is one line naming the key and the file, and nothing is started', async () => {
    const file = join(t.scratch, 'bad.toml');
    await writeFile(file, '[vm]\nmemory = 512\n');
    const b = await t.bundle(['true']);
    const r = await hull(['--config', file, '--root', t.root, 'run', '--bundle', b.dir, b.id]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${file}: unknown key vm.memory: known keys are .*vm.memory_mib`));
    assert.deepEqual(await readdir(t.root).catch(() => []), [], 'no container directory');
    const missing = await hull(['--root', t.root, 'list'], {
      env: { HULL_CONFIG: join(t.scratch, 'none.toml') },
    });
    assert.match(
      missing.stderr,
      /none.toml does not exist: create it, or name another with --config or HULL_CONFIG/,
    );
  });
});
