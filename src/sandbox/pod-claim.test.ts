import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOTFS_DISK_ANNOTATION, ROOTFS_IMAGE_ANNOTATION } from '../oci/rootfs-annotations.js';
import type { Spec } from '../oci/spec.js';
import { identityOf } from '../sys/process-identity.js';
import { containerDir } from './container-id.js';
import { checkedPodOf, podOf, recordPod } from './pod-claim.js';
import { type ContainerState, writeState } from './state.js';

/** Pinned namespaces as CRI-O's pinns leaves them: bind-mounted namespace files of a pod. */
function pinPod(dir: string, name: string): string {
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  sh(`touch ${dir}/${name} && unshare --net=${dir}/${name} true`);
  return join(dir, name);
}

test("a pod is named by its pinned namespaces, or by /proc/<pid>/ns of a live member's monitor", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-podclaim-'));
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  try {
    sh(`mount --bind ${dir} ${dir} && mount --make-private ${dir}`);
    const settings = { root: join(dir, 'root'), debug: false };
    const podNet = pinPod(dir, 'netns-a');
    const otherNet = pinPod(dir, 'netns-b');
    const spec = (namespaces: { type: string; path?: string }[]) => ({ linux: { namespaces } }) as Spec;
    const key = (await podOf(settings, spec([{ type: 'network', path: podNet }, { type: 'ipc' }])))?.key;
    assert.match(key ?? '', /^network:\d+$/);
    assert.notEqual((await podOf(settings, spec([{ type: 'network', path: otherNet }])))?.key, key);
    assert.equal(await podOf(settings, spec([{ type: 'network' }])), undefined);

    // podman: the infra container's monitor is this process.
    const member = async (id: string, status: ContainerState['status']) => {
      await mkdir(containerDir(settings, id), { recursive: true });
      await recordPod(settings, id, key!);
      await writeState(containerDir(settings, id), {
        ociVersion: '1.0.2',
        id,
        pid: process.pid,
        pidStartTime: identityOf(process.pid)?.startTime,
        status,
        bundle: '',
        rootfs: '',
        created: '',
        owner: '',
        annotations: {},
      });
    };
    const podman = spec([
      { type: 'network', path: `/proc/${process.pid}/ns/net` },
      { type: 'ipc', path: `/proc/${process.pid}/ns/ipc` },
      { type: 'pid', path: `/proc/${process.pid}/ns/pid` },
    ]);
    assert.equal(await podOf(settings, podman), undefined, 'no live member: no pod');
    await member('infra', 'stopped');
    assert.equal(await podOf(settings, podman), undefined, 'a stopped member names no pod');
    await member('infra', 'running');
    const found = await podOf(settings, podman);
    assert.equal(found?.key, key);
    assert.deepEqual(
      [...(found?.memberPaths ?? [])],
      [`/proc/${process.pid}/ns/net`, `/proc/${process.pid}/ns/ipc`],
      "the pod's PID namespace is not the VM's: that path is not the pod's",
    );
  } finally {
    sh(`umount ${dir}/netns-a ${dir}/netns-b 2>/dev/null; umount ${dir}; true`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a container with its root on disks is in no pod, though it names a pinned network namespace (hull serve's)", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-podclaim-'));
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  try {
    sh(`mount --bind ${dir} ${dir} && mount --make-private ${dir}`);
    const settings = { root: join(dir, 'root'), debug: false };
    const netns = pinPod(dir, 'netns-serve');
    const bundle = (annotations?: Record<string, string>) => ({
      dir,
      rootfs: join(dir, 'rootfs'),
      spec: { annotations, linux: { namespaces: [{ type: 'network', path: netns }] } } as Spec,
    });
    assert.match(
      (await checkedPodOf(settings, bundle()))?.key ?? '',
      /^network:\d+$/,
      'a pod, as CRI-O pins',
    );
    const onDisks = {
      [ROOTFS_IMAGE_ANNOTATION]: '/images/x/rootfs.erofs',
      [ROOTFS_DISK_ANNOTATION]: '/root/disk.raw',
    };
    assert.equal(await checkedPodOf(settings, bundle(onDisks)), undefined);
  } finally {
    sh(`umount ${dir}/netns-serve 2>/dev/null; umount ${dir}; true`);
    rmSync(dir, { recursive: true, force: true });
  }
});
