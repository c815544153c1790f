import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bundleTests, hull } from './harness.js';

/** The container's files: a read-only root, and host directories bind-mounted in. */
describe('hull run: filesystems', { timeout: 600_000 }, () => {
  const t = bundleTests('fs');
  const bundle = t.bundle;

  test('a read-only root refuses writes', async () => {
    const b = await bundle(['sh', '-c', 'echo x > /new-file']);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Read-only file system/);
  });

  test('a writable root takes writes, and they land in the host bundle', async () => {
    const b = await bundle(['sh', '-c', 'echo written-in-guest > /root/note'], (spec) => {
      spec.root!.readonly = false;
    });
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(join(b.dir, 'rootfs', 'root', 'note'), 'utf8'), 'written-in-guest\n');
  });

  test('bind mounts are visible, writable when rw and refuse writes when ro', async () => {
    const data = join(t.scratch, 'data');
    const config = join(t.scratch, 'settings.conf');
    await mkdir(data);
    await writeFile(join(data, 'input.txt'), 'from the host\n');
    await writeFile(config, 'mode=test\n');
    const b = await bundle(
      [
        'sh',
        '-c',
        'cat /data/input.txt /etc/settings.conf; echo from-guest > /data/output.txt; echo y > /etc/settings.conf || echo ro-refused',
      ],
      (spec) => {
        spec.mounts!.push(
          { destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] },
          { destination: '/etc/settings.conf', type: 'bind', source: config, options: ['bind', 'ro'] },
        );
      },
    );
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from the host\nmode=test\nro-refused\n');
    assert.equal(await readFile(join(data, 'output.txt'), 'utf8'), 'from-guest\n');
    assert.equal(await readFile(config, 'utf8'), 'mode=test\n', 'the read-only file is unchanged');
  });
});
