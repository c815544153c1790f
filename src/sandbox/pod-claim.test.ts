import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Spec } from '../oci/spec.js';
import type { Bundle } from './bundle.js';
import { claimPodOf, podKeyOf } from './pod-claim.js';
import { containerDir } from './runtime.js';
import { type ContainerState, writeState } from './state.js';

/** Pinned namespaces as CRI-O's pinns leaves them: bind-mounted namespace files of a pod. */
function pinPod(dir: string, name: string): string {
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  sh(`touch ${dir}/${name} && unshare --net=${dir}/${name} true`);
  return join(dir, name);
}

test("a second live container naming a pod's pinned namespaces is refused; a stopped one frees the pod", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-podclaim-'));
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  try {
    sh(`mount --bind ${dir} ${dir} && mount --make-private ${dir}`);
    const settings = { root: join(dir, 'root'), debug: false };
    const podNet = pinPod(dir, 'netns-a');
    const otherNet = pinPod(dir, 'netns-b');
    const bundle = (netns: string): Bundle =>
      ({
        dir: join(dir, 'bundle'),
        rootfs: join(dir, 'bundle', 'rootfs'),
        spec: { linux: { namespaces: [{ type: 'network', path: netns }, { type: 'ipc' }] } } as Spec,
      }) as Bundle;
    assert.match((await podKeyOf(bundle(podNet).spec)) ?? '', /^network:\d+$/);
    assert.equal(await podKeyOf({ linux: { namespaces: [{ type: 'network' }] } } as Spec), undefined);

    const claim = async (id: string, netns: string, status: ContainerState['status']) => {
      await mkdir(containerDir(settings, id), { recursive: true });
      await claimPodOf(settings, id, bundle(netns));
      await writeState(containerDir(settings, id), {
        ociVersion: '1.0.2',
        id,
        pid: process.pid,
        status,
        bundle: '',
        rootfs: '',
        created: '',
        owner: '',
        annotations: {},
      });
    };
    await claim('first', podNet, 'running');
    await assert.rejects(
      claim('second', podNet, 'created'),
      /the pod namespaces it names are those of container first, whose VM has them; hull's OCI command runs one container per pod/,
    );
    await claim('elsewhere', otherNet, 'running');
    await claim('first', podNet, 'stopped');
    await claim('second', podNet, 'created');
  } finally {
    sh(`umount ${dir}/netns-a ${dir}/netns-b 2>/dev/null; umount ${dir}; true`);
    rmSync(dir, { recursive: true, force: true });
  }
});
