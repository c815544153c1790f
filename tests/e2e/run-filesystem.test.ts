import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { bundleTests, hull } from './harness.js';

const run = promisify(execFile);
/** Where a user namespace's uid and gid 0 are mapped, as podman's --userns=auto might. */
const MAPPED = 100_000;

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

  // Issue 9: crun could not reach the rootfs from inside the user namespace (the share was 0700).
  test('a user-namespaced container is root in its namespace and owns its rootfs there', async () => {
    const b = await bundle(['sh', '-c', 'id -u; cat /proc/self/uid_map; echo mine > /root/note'], (spec) => {
      spec.root!.readonly = false;
      spec.linux!.namespaces!.push({ type: 'user' });
      spec.linux!.uidMappings = [{ containerID: 0, hostID: MAPPED, size: 65536 }];
      spec.linux!.gidMappings = [{ containerID: 0, hostID: MAPPED, size: 65536 }];
    });
    // As podman --userns does: the image's files belong to the mapped ids.
    await run('chown', ['-R', `${MAPPED}:${MAPPED}`, join(b.dir, 'rootfs')]);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    const [uid, map] = r.stdout.trim().split('\n');
    assert.equal(uid, '0');
    assert.deepEqual(map!.trim().split(/\s+/), ['0', String(MAPPED), '65536']);
    const note = await stat(join(b.dir, 'rootfs', 'root', 'note'));
    assert.equal(note.uid, MAPPED, "the container's root writes as the mapped user");
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
