import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultSpec } from '../oci/default-spec.js';
import type { Bundle } from '../sandbox/bundle.js';
import { scratchDir } from '../testing/scratch.js';
import { GUEST_PAUSE_PATH, runnableSandboxBundle } from './guest-pause.js';

/** The first 20 bytes of an ELF executable for e_machine `machine` (little-endian, 64-bit). */
function elf(machine: number): Buffer {
  const header = Buffer.alloc(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  header.writeUInt16LE(machine, 18);
  return header;
}

async function pauseBundle(dir: string, machine: number): Promise<Bundle> {
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await writeFile(join(rootfs, 'bin', 'pause'), elf(machine), { mode: 0o755 });
  return { dir, rootfs, spec: defaultSpec(['/bin/pause'], { terminal: false }) } as Bundle;
}

const fakeBusybox = async () => Buffer.from('arm64 busybox');

test("a pod's x86_64 pause program in an arm64 VM is replaced by the guest's busybox sleeping", async () => {
  const dir = await scratchDir('hull-guest-pause-');
  const bundle = await pauseBundle(dir, 62);
  const runnable = await runnableSandboxBundle(bundle, 'arm64', join(dir, 'work'), fakeBusybox);
  assert.deepEqual(runnable.spec.process?.args, [GUEST_PAUSE_PATH, 'sleep', '2147483647']);
  const mount = runnable.spec.mounts?.find((m) => m.destination === GUEST_PAUSE_PATH);
  assert.deepEqual(mount?.options, ['rbind', 'ro'], 'bound read-only');
  assert.equal(await readFile(mount!.source!, 'utf8'), 'arm64 busybox');
  assert.equal(runnable.rootfs, bundle.rootfs, "the pause image's root filesystem is kept");
  assert.deepEqual(bundle.spec.process?.args, ['/bin/pause'], "the caller's bundle is not changed");
});

test("a pause program of the VM's architecture, or one not found, is left as it is", async () => {
  const dir = await scratchDir('hull-guest-pause-');
  const same = await pauseBundle(dir, 183);
  assert.equal(await runnableSandboxBundle(same, 'arm64', join(dir, 'work'), fakeBusybox), same);
  const x86 = await pauseBundle(join(dir, 'x86'), 62);
  assert.equal(await runnableSandboxBundle(x86, 'x86_64', join(dir, 'work'), fakeBusybox), x86);
  const missing = { ...same, spec: defaultSpec(['/no/such'], { terminal: false }) } as Bundle;
  assert.equal(await runnableSandboxBundle(missing, 'arm64', join(dir, 'work'), fakeBusybox), missing);
});
