import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bundleTests, hull, hullDetached } from './harness.js';

/** Issue 13: a shell in the guest VM itself, for looking at the agent, mounts and kernel log. */
describe('hull debug-console', { timeout: 600_000 }, () => {
  const t = bundleTests('debug');

  test('refused while the configuration keeps it off (the default)', async () => {
    const b = await t.bundle(['sleep', '1000']);
    assert.equal((await hullDetached(t.root, ['--bundle', b.dir, b.id])).code, 0);
    try {
      const r = await hull(['--root', t.root, 'debug-console', b.id], { input: 'id\n' });
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /the debug console is off: set vm.debug_console = true/);
      // Turned on only now: this VM was started without the port.
      const late = await hull(['--root', t.root, 'debug-console', b.id], {
        input: 'id\n',
        env: { HULL_DEBUG_CONSOLE: 'on' },
      });
      assert.match(late.stderr, /was started without the debug console/);
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });

  test("when on, a root shell in the VM: the guest's PID 1, its mounts and kernel log", async () => {
    const env = { HULL_DEBUG_CONSOLE: 'on' };
    const b = await t.bundle(['sleep', '1000']);
    assert.equal((await hullDetached(t.root, ['--bundle', b.dir, b.id], env)).code, 0);
    try {
      const r = await hull(['--root', t.root, 'debug-console', b.id], {
        env,
        input:
          'echo "pid1=$(cat /proc/1/comm)"; id -u; ls /run/hull/containers; dmesg | grep -c virtio; exit\n',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /pid1=hull-init$/m, "the VM's own init, not the container's process");
      assert.match(r.stdout, /^0$/m, 'root in the guest');
      assert.match(r.stdout, new RegExp(`^${b.id}$`, 'm'), "the agent's container directory");
      assert.match(r.stdout, /^[1-9]\d*$/m, 'the kernel log');
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });
});
