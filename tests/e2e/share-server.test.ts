import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isHullError } from '../../src/errors.js';
import { HostMounter } from '../../src/sys/mount.js';
import { runAsVmm, VMM_UID } from './as-vmm.js';
import { privateDirs } from './harness.js';

/**
 * What a compromised QEMU can do to the share (runAsVmm), trying what 9p's mapped-xattr model
 * lets a guest ask for and what it does not.
 */
const ATTACK = String.raw`
import os, struct, sys, json
share = sys.argv[1]
root = share + '/ctr/rootfs'
out = {}
def attempt(name, fn):
    try:
        r = fn()
        out[name] = 'ok' if r is None else r
    except OSError as e:
        out[name] = e.strerror
def xattr(path, key, value):
    os.setxattr(path, 'user.virtfs.' + key, value, follow_symlinks=False)
def view(path):
    mode = struct.unpack('<I', os.getxattr(path, 'user.virtfs.mode', follow_symlinks=False))[0]
    uid = struct.unpack('<I', os.getxattr(path, 'user.virtfs.uid', follow_symlinks=False))[0]
    return [oct(mode), uid]
def make(name, content=b''):
    fd = os.open(root + '/' + name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    os.write(fd, content); os.close(fd)
# What the guest is shown of the host's files: their real owners and modes, links as links.
attempt('view owned', lambda: view(root + '/owned'))
attempt('view link', lambda: view(root + '/link'))
attempt('view sticky', lambda: view(root + '/tmp'))
attempt('view image suid', lambda: view(root + '/image-suid'))
attempt('read link', lambda: open(root + '/link').read())
# Setuid root, the way QEMU sets a mode: kept for the guest, never on the host.
def setuid():
    make('suid', b'x'); xattr(root + '/suid', 'uid', struct.pack('<I', 0))
    xattr(root + '/suid', 'mode', struct.pack('<I', 0o104755)); return view(root + '/suid')
attempt('setuid', setuid)
# A character device for /dev/mem, as a guest's mknod asks.
def device():
    os.mknod(root + '/mem', 0o100600)
    xattr(root + '/mem', 'mode', struct.pack('<I', 0o020600)); xattr(root + '/mem', 'rdev', struct.pack('<Q', os.makedev(1, 1)))
    return view(root + '/mem')
attempt('device', device)
attempt('open device', lambda: open(root + '/mem').read(1))
attempt('real mknod', lambda: os.mknod(root + '/mem2', 0o020600, os.makedev(1, 1)))
# An old file turned into a symlink to the host's /etc by setting its mode.
attempt('retype old file', lambda: xattr(root + '/owned', 'mode', struct.pack('<I', 0o120777)))
attempt('symlink op', lambda: os.symlink('/etc', root + '/direct-link'))
# What the server keeps aside is not the guest's to set, read or remove.
attempt('set hull xattr', lambda: os.setxattr(root + '/owned', 'user.hull.mode', struct.pack('<I', 0o4000)))
attempt('remove virtfs xattr', lambda: os.removexattr(root + '/owned', 'user.virtfs.mode'))
attempt('list', lambda: sorted(os.listxattr(root + '/suid')))
# File capabilities, security labels and trusted xattrs are host privileges: only user.* and
# POSIX ACLs pass (issue 24, finding 7).
attempt('file capability', lambda: os.setxattr(root + '/owned', 'security.capability', b'\x01\x00\x00\x02' + b'\xff' * 16))
attempt('selinux label', lambda: os.setxattr(root + '/owned', 'security.selinux', b'system_u:object_r:shadow_t:s0'))
attempt('ima hash', lambda: os.setxattr(root + '/owned', 'security.ima', b'\x04\x04' + b'\x00' * 32))
attempt('trusted xattr', lambda: os.setxattr(root + '/owned', 'trusted.overlay.opaque', b'y'))
attempt('remove host label', lambda: os.removexattr(root + '/owned', 'security.hull-test'))
attempt('read host label', lambda: os.getxattr(root + '/owned', 'security.hull-test').decode())
attempt('user xattr', lambda: (os.setxattr(root + '/owned', 'user.foo', b'bar'), os.getxattr(root + '/owned', 'user.foo').decode())[1])
attempt('guest acl', lambda: os.setxattr(root + '/owned', 'user.virtfs.system.posix_acl_access', b'\x02\x00\x00\x00'))
attempt('list owned', lambda: sorted(os.listxattr(root + '/owned')))
attempt('host fifo', lambda: open(root + '/fifo', 'rb', buffering=0))
# The share's top stays the host's.
attempt('write top', lambda: os.mkdir(share + '/planted'))
attempt('unlink in sticky', lambda: (make('tmp/x'), os.unlink(root + '/tmp/x'))[1])
print(json.dumps(out))
`;

/** A host file's xattr names, sorted, after setting `add` (to "host") if given. */
function hostXattrs(path: string, add?: string): string[] {
  const script = `import os, sys, json
if len(sys.argv) > 2: os.setxattr(sys.argv[1], sys.argv[2], b'host', follow_symlinks=False)
print(json.dumps(sorted(os.listxattr(sys.argv[1], follow_symlinks=False))))`;
  const out = execFileSync('python3', ['-c', script, path, ...(add ? [add] : [])], { encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

describe('hull-share-server against a compromised QEMU', { timeout: 120_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  before(async () => {
    dirs = await privateDirs('share-server');
  });
  after(() => dirs.cleanup());

  test('a VMM user without capabilities gets no host setuid file, device node, link out or hull xattr', async () => {
    const share = join(dirs.scratch, 'share');
    const rootfs = join(share, 'ctr', 'rootfs');
    await mkdir(join(rootfs, 'tmp'), { recursive: true });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await writeFile(join(rootfs, 'owned'), 'secret\n', { mode: 0o640 });
    await chown(join(rootfs, 'owned'), 1000, 1000);
    await symlink('owned', join(rootfs, 'link'));
    // An image's own setuid program, as su and passwd are in Debian's.
    await writeFile(join(rootfs, 'image-suid'), '');
    await chmod(join(rootfs, 'image-suid'), 0o4755);
    execFileSync('mkfifo', [join(rootfs, 'fifo')]);
    // A container's rootfs is a mount below the share's read-only top, as hull makes it.
    execFileSync('mount', ['--bind', rootfs, rootfs]);
    // A label the host gave the file: not the guest's to read.
    hostXattrs(join(rootfs, 'owned'), 'security.hull-test');
    const stdout = await runAsVmm({ scratch: dirs.scratch, share, source: ATTACK });
    const seen = JSON.parse(stdout) as Record<string, unknown>;
    execFileSync('umount', [rootfs]);

    assert.deepEqual(seen['view owned'], ['0o100640', 1000], 'real owner and mode');
    assert.deepEqual(seen['view link'], ['0o120777', 0], 'a real symlink is a symlink to the guest');
    assert.deepEqual(seen['view sticky'], ['0o41777', 0]);
    assert.deepEqual(seen['view image suid'], ['0o104755', 0], "an image's setuid program stays one");
    assert.equal(seen['read link'], 'owned', "the VMM reads a link's target, never follows it");
    assert.deepEqual(seen.setuid, ['0o104755', 0], 'the guest sees its setuid root file');
    assert.deepEqual(seen.device, ['0o20600', VMM_UID], 'and its device node');
    assert.equal(seen['open device'], '', 'which is an empty plain file to the host');
    assert.equal(seen['real mknod'], 'Operation not permitted');
    assert.equal(
      seen['retype old file'],
      'Operation not permitted',
      'only a file just made may become a link',
    );
    assert.equal(seen['symlink op'], 'Operation not permitted');
    assert.equal(seen['set hull xattr'], 'Operation not permitted');
    assert.equal(seen['remove virtfs xattr'], 'Operation not permitted');
    assert.deepEqual(seen.list, [], 'user.hull.* is not listed');
    // Refused by the server; some also by the kernel, for the VMM's lack of capabilities.
    assert.equal(seen['selinux label'], 'Operation not supported', 'not a name the guest may set');
    for (const name of ['remove host label', 'file capability', 'ima hash', 'trusted xattr'])
      assert.match(String(seen[name]), /^Operation not (supported|permitted)$/, name);
    assert.equal(seen['read host label'], 'No data available');
    assert.equal(seen['user xattr'], 'bar', "the guest's own user.* xattrs work");
    assert.equal(seen['guest acl'], 'ok', "and its ACLs, as 9p's mapped model keeps them");
    assert.deepEqual(seen['list owned'], ['user.foo', 'user.virtfs.system.posix_acl_access']);
    assert.equal(seen['host fifo'], 'Permission denied', 'a host fifo is never opened for the guest');
    assert.equal(seen['write top'], 'Read-only file system');
    assert.equal(seen['unlink in sticky'], 'ok', 'the VMM acts for guest root without capabilities');

    const suid = await lstat(join(rootfs, 'suid'));
    assert.deepEqual([suid.uid, suid.mode & 0o7777], [0, 0o755], 'no setuid bit on the host');
    assert.ok((await lstat(join(rootfs, 'mem'))).isFile(), 'no device node on the host');
    assert.equal(await readFile(join(rootfs, 'owned'), 'utf8'), 'secret\n');
    assert.deepEqual(
      hostXattrs(join(rootfs, 'owned')),
      ['security.hull-test', 'user.foo', 'user.virtfs.system.posix_acl_access'],
      'no label, capability or trusted xattr reached the host file',
    );
    assert.ok((await lstat(join(rootfs, 'owned'))).isFile());
    assert.equal(await readlink(join(rootfs, 'link')), 'owned');
    assert.deepEqual((await readdir(share)).sort(), ['ctr']);
  });

  test("the host's mounts in a share follow no symlink a guest planted there", async () => {
    const share = join(dirs.scratch, 'planted');
    const rootfs = join(share, 'ctr', 'rootfs');
    await mkdir(rootfs, { recursive: true });
    const source = join(dirs.scratch, 'source');
    await mkdir(source);
    // What root in a container can leave in its root filesystem, inside the share.
    await symlink('/etc', join(rootfs, 'etc-link'));
    await symlink('/', join(share, 'next-ctr'));
    const mounter = new HostMounter();
    for (const rel of ['ctr/rootfs/etc-link/hull-planted', 'next-ctr/rootfs', 'ctr/../../escape']) {
      await assert.rejects(
        mounter.bindBeneath(share, rel, source, { recursive: false, kind: 'dir' }),
        (err: unknown) => isHullError(err, 'ERR_MOUNT'),
        rel,
      );
    }
    await assert.rejects(lstat('/etc/hull-planted'), 'nothing made through the link');
    await assert.rejects(lstat('/rootfs'), 'nor through the share-level link');
    assert.deepEqual(await mounter.mountsUnder(share), [], 'and nothing mounted');
    // The way in that is not a link works, and comes out again.
    await mounter.bindBeneath(share, 'ctr/mounts/0', source, { recursive: false, kind: 'dir' });
    assert.deepEqual(await mounter.mountsUnder(share), [join(share, 'ctr', 'mounts', '0')]);
    await mounter.unmountTree(share);
    assert.deepEqual(await mounter.mountsUnder(share), []);
  });
});
