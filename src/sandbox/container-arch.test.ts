import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { hostArch } from '../hypervisor/arch.js';
import type { Spec } from '../oci/spec.js';
import { scratchDir } from '../testing/scratch.js';
import { ARCH_ANNOTATION, containerArch, programArch, resolveInRootfs } from './container-arch.js';

afterEach(() => {
  delete process.env.HULL_ARCH;
});

/** The first bytes of a 64-bit little-endian ELF executable for `machine`. */
function elfHeader(machine: number): Buffer {
  const header = Buffer.alloc(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(machine, 18);
  return header;
}

/** A root filesystem whose busybox is arm64's, with the links images have. */
async function arm64Rootfs(): Promise<string> {
  const rootfs = await scratchDir('hull-rootfs-');
  await mkdir(join(rootfs, 'bin'));
  await mkdir(join(rootfs, 'usr/bin'), { recursive: true });
  await writeFile(join(rootfs, 'bin/busybox'), elfHeader(183));
  await symlink('busybox', join(rootfs, 'bin/sh'));
  await symlink('/bin/busybox', join(rootfs, 'usr/bin/env'));
  await writeFile(join(rootfs, 'usr/bin/script'), '#!/bin/sh -e\necho hi\n');
  await writeFile(join(rootfs, 'usr/bin/amd64-tool'), elfHeader(62));
  return rootfs;
}

const processOf = (args: string[], extra: Partial<NonNullable<Spec['process']>> = {}): Spec['process'] => ({
  args,
  cwd: '/',
  user: { uid: 0, gid: 0 },
  ...extra,
});

test("a program's architecture is its ELF header's, found on the container's PATH through its links", async () => {
  const rootfs = await arm64Rootfs();
  assert.equal(await programArch(rootfs, processOf(['sh', '-c', 'true'])), 'arm64', 'bin/sh -> busybox');
  assert.equal(await programArch(rootfs, processOf(['/usr/bin/env'])), 'arm64', 'an absolute link');
  assert.equal(await programArch(rootfs, processOf(['amd64-tool'])), 'x86_64');
  assert.equal(await programArch(rootfs, processOf(['script'])), 'arm64', "a script: its interpreter's");
  assert.equal(await programArch(rootfs, processOf(['./busybox'], { cwd: '/bin' })), 'arm64', 'from its cwd');
  assert.equal(await programArch(rootfs, processOf(['missing'])), undefined);
  assert.equal(
    await programArch(rootfs, processOf(['env'], { env: ['PATH=/nowhere'] })),
    undefined,
    "the container's own PATH",
  );
});

test("links are the container's: neither .. nor an absolute target leaves the root filesystem", async () => {
  const rootfs = await arm64Rootfs();
  // Each would name the host's own x86 busybox if followed on the host.
  await symlink('../../../../../../../../bin/busybox', join(rootfs, 'usr/bin/up'));
  await symlink('/../../../../bin/busybox', join(rootfs, 'usr/bin/abs-up'));
  await symlink(`${rootfs}/../../../../bin/busybox`, join(rootfs, 'usr/bin/host-path'));
  for (const name of ['up', 'abs-up']) {
    assert.equal(await resolveInRootfs(rootfs, `/usr/bin/${name}`), join(rootfs, 'bin/busybox'), name);
    assert.equal(await programArch(rootfs, processOf([name])), 'arm64', name);
  }
  assert.equal(
    await resolveInRootfs(rootfs, '/usr/bin/host-path'),
    undefined,
    'a host path is not in the root',
  );
  await symlink('loop-b', join(rootfs, 'bin/loop-a'));
  await symlink('loop-a', join(rootfs, 'bin/loop-b'));
  assert.equal(await programArch(rootfs, processOf(['/bin/loop-a'])), undefined, 'a link loop ends');
});

test('the architecture of a VM: the setting, else the annotation, else the program, else the host', async () => {
  const rootfs = await arm64Rootfs();
  const spec = (annotations?: Record<string, string>, args = ['sh']): Spec =>
    ({ ociVersion: '1.0.2', process: processOf(args), annotations }) as Spec;
  assert.equal(await containerArch({ spec: spec(), rootfs }), 'arm64');
  assert.equal(await containerArch({ spec: spec(undefined, ['missing']), rootfs }), hostArch());
  assert.equal(await containerArch({ spec: spec({ [ARCH_ANNOTATION]: 'amd64' }), rootfs }), 'x86_64');
  await assert.rejects(
    containerArch({ spec: spec({ [ARCH_ANNOTATION]: 'mips' }), rootfs }),
    /annotation dev.hull.arch: unknown architecture "mips"/,
  );
  process.env.HULL_ARCH = 'x86_64';
  assert.equal(await containerArch({ spec: spec(), rootfs }), 'x86_64', 'vm.arch wins');
});
