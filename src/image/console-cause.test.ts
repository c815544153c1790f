import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consoleCause, consoleCauseOrLastLine } from './console-cause.js';

test('a snapshot rejected by V8: hull-init and the lines before it, not "machine restart"', () => {
  const console = [
    '[    1.100000] erofs: (device vda): mounted with root inode @ nid 36.',
    'Failed to load the startup snapshot because it was built with a different version of V8 or with different V8 configurations.',
    'Expected tag c3583e1f, read 839dbe75',
    'hull-init: agent exited with status 14; powering off',
    '[    3.927686] reboot: machine restart',
  ].join('\r\n');
  assert.equal(
    consoleCause(console),
    'hull-init: agent exited with status 14, after: Failed to load the startup snapshot because it was ' +
      'built with a different version of V8 or with different V8 configurations. Expected tag c3583e1f, read 839dbe75',
  );
});

test('the initramfs failing names what it could not do', () => {
  const console = 'hull-initramfs: cannot mount the root filesystem\n[ 2.0] reboot: machine restart\n';
  assert.equal(consoleCause(console), 'hull-initramfs: cannot mount the root filesystem');
});

test('agent JSON error lines are quoted readably; native stack frames are skipped', () => {
  const console = [
    '{"level":"error","uptime":"1.2","scope":"agent","msg":"agent failed","error":"no virtio port agent.0"}',
    '----- Native stack trace -----',
    ' 1: 0xcb5167 node::Assert',
    'hull-init: agent exited with status 1; powering off',
  ].join('\n');
  assert.equal(
    consoleCause(console),
    'hull-init: agent exited with status 1, after: agent: agent failed: no virtio port agent.0',
  );
});

test('a kernel panic wins over everything else', () => {
  const console =
    '[ 0.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n[ 0.6] reboot: machine restart';
  assert.equal(consoleCause(console), 'the guest kernel panicked: VFS: Unable to mount root fs');
});

test('a hostile console is bounded to one short line', () => {
  const cause = consoleCause(`${'x'.repeat(100_000)}\u001b[2J\nhull-init: ${'y'.repeat(5000)}\n`)!;
  assert.ok(cause.length <= 400);
  assert.ok(!cause.includes('\n') && !cause.includes('\u001b'));
});

test('without a known cause, the last line is quoted as such', () => {
  assert.equal(consoleCause('[ 1.0] reboot: machine restart\n'), undefined);
  assert.equal(
    consoleCauseOrLastLine('[ 1.0] reboot: machine restart\n'),
    "its console's last line: reboot: machine restart",
  );
  assert.equal(consoleCauseOrLastLine(''), 'its console is empty');
});
