import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkNamespacePath, isPinnedNamespace } from './namespaces.js';

test('namespace paths: /proc links by their type, missing paths, other files', async () => {
  assert.equal(await checkNamespacePath(`/proc/${process.pid}/ns/ipc`, 'ipc'), 'ok');
  assert.equal(await checkNamespacePath(`/proc/${process.pid}/ns/net`, 'ipc'), 'other-type');
  assert.equal(await checkNamespacePath(`/proc/${process.pid}/ns/mnt`, 'mount'), 'ok');
  assert.equal(await checkNamespacePath('/proc/999999999/ns/ipc', 'ipc'), 'missing');
  assert.equal(await checkNamespacePath('/etc/hostname', 'mount'), 'other-type');
  assert.equal(await checkNamespacePath('/etc/hostname', 'uts'), 'other-type');
});

// A config.json naming a mount namespace that someone prepared, whose /usr/bin/true is theirs:
// checking the path must not run anything from it as the host's root.
test('a bind-mounted mount namespace is recognised without running a program from it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-nsfile-'));
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  try {
    sh(`mount --bind ${dir} ${dir} && mount --make-private ${dir} && touch ${dir}/mntns`);
    writeFileSync(join(dir, 'evil'), `#!/bin/sh\ntouch ${dir}/ran\n`, { mode: 0o755 });
    sh(`unshare --mount=${dir}/mntns sh -c 'mount --bind ${dir}/evil /usr/bin/true'`);
    assert.equal(await checkNamespacePath(join(dir, 'mntns'), 'mount'), 'ok');
    assert.ok(!existsSync(join(dir, 'ran')), "nothing ran from the namespace's files");
  } finally {
    sh(`umount ${dir}/mntns 2>/dev/null; umount ${dir} 2>/dev/null; true`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a pinned namespace is a bind-mounted namespace file other than hull's own", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-pin-'));
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  try {
    sh(`mount --bind ${dir} ${dir} && mount --make-private ${dir} && touch ${dir}/ipcns ${dir}/hostipc`);
    sh(`unshare --ipc=${dir}/ipcns true && mount --bind /proc/self/ns/ipc ${dir}/hostipc`);
    assert.equal(await checkNamespacePath(join(dir, 'ipcns'), 'ipc'), 'ok');
    assert.equal(await isPinnedNamespace(join(dir, 'ipcns'), 'ipc'), true);
    assert.equal(await isPinnedNamespace(join(dir, 'hostipc'), 'ipc'), false, "the host's own, pinned");
    assert.equal(await isPinnedNamespace(`/proc/${process.pid}/ns/ipc`, 'ipc'), false, 'a /proc link');
    assert.equal(await isPinnedNamespace('/etc/hostname', 'ipc'), false);
  } finally {
    sh(`umount ${dir}/ipcns ${dir}/hostipc 2>/dev/null; umount ${dir} 2>/dev/null; true`);
    rmSync(dir, { recursive: true, force: true });
  }
});
