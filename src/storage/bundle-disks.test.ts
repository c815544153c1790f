import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHullError } from '../errors.js';
import type { Spec } from '../oci/spec.js';
import { specOnDisks } from './bundle-disks.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function hostFiles(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hull-bundle-disks-'));
  dirs.push(dir);
  await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n');
  await mkdir(join(dir, 'shm'));
  await mkdir(join(dir, 'volume'));
  return dir;
}

const spec = (mounts: Spec['mounts']): Spec => ({ ociVersion: '1.0.2', mounts });

test("podman's file binds become copies on the disk and its /dev/shm a tmpfs of the guest", async () => {
  const host = await hostFiles();
  const proc = { destination: '/proc', type: 'proc', source: 'proc' };
  const { spec: onDisks, files } = await specOnDisks(
    'c1',
    spec([
      proc,
      { destination: '/etc/hosts', type: 'bind', source: join(host, 'hosts'), options: ['bind', 'rprivate'] },
      { destination: '/dev/shm', type: 'bind', source: join(host, 'shm'), options: ['bind', 'nosuid'] },
    ]),
  );
  assert.deepEqual(files, [{ destination: '/etc/hosts', source: join(host, 'hosts') }]);
  assert.deepEqual(onDisks.mounts?.[0], proc);
  assert.equal(onDisks.mounts?.length, 2);
  assert.deepEqual(onDisks.mounts?.[1]?.type, 'tmpfs');
  assert.equal(onDisks.mounts?.[1]?.destination, '/dev/shm');
});

test('a bind mount of a directory (a volume) is refused in one line naming it', async () => {
  const host = await hostFiles();
  await assert.rejects(
    specOnDisks('c1', spec([{ destination: '/data', type: 'bind', source: join(host, 'volume') }])),
    (err: unknown) =>
      isHullError(err, 'ERR_CONFIG') &&
      err.message.includes(`binds ${join(host, 'volume')} at /data`) &&
      !err.message.includes('\n'),
  );
});
