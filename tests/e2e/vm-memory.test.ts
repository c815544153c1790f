import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bundleTests, hull, hullDetached, qemuProcessesUsing, residentBytes } from './harness.js';

const MiB = 2 ** 20;

/** Issue 11: what a sandbox costs the host, beyond what it is using. */
describe('VM memory', { timeout: 300_000 }, () => {
  const t = bundleTests('vmmem');

  test('memory a container used and freed goes back to the host (free page reporting)', async () => {
    const b = await t.bundle(['sleep', '1000']);
    // A booted VM: a clone's memory is its template's file mapped private, which QEMU 7.2
    // cannot give back page by page (see README, VM templates).
    const started = await hullDetached(t.root, ['--bundle', b.dir, b.id], { HULL_TEMPLATE: 'off' });
    assert.equal(started.code, 0, started.stderr);
    try {
      const [qemu] = await qemuProcessesUsing(t.root);
      assert.ok(qemu, 'the container has a VM');
      const filled = await hull([
        '--root',
        t.root,
        'exec',
        b.id,
        'dd',
        'if=/dev/zero',
        'of=/dev/shm/fill',
        'bs=1M',
        'count=60',
      ]);
      assert.equal(filled.code, 0, filled.stderr);
      const used = await residentBytes(qemu);
      const freed = await hull(['--root', t.root, 'exec', b.id, 'rm', '/dev/shm/fill']);
      assert.equal(freed.code, 0, freed.stderr);
      // The guest reports freed pages in blocks of 128 KiB or more, a couple of seconds after
      // they are freed; what is left in smaller pieces stays (a few of the 60 MiB here).
      let now = used;
      for (let i = 0; i < 100 && used - now < 40 * MiB; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        now = await residentBytes(qemu);
      }
      assert.ok(
        used - now >= 40 * MiB,
        `QEMU held ${(used / MiB).toFixed(0)} MiB with 60 MiB in the guest's /dev/shm, ${(now / MiB).toFixed(0)} MiB after it was removed`,
      );
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });
});
