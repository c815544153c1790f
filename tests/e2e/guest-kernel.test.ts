import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { unpackDebianRootfs } from '../fixtures/debian-image.js';
import { FEATURE_STEPS, FEATURES, privilegedWithDevices } from '../fixtures/kernel-features.js';
import { minimalKernelState } from '../fixtures/minimal-kernel.js';
import { bundleTests, hull } from './harness.js';

/**
 * Both kernels hull builds: Debian's, whose features are modules loaded on demand from the
 * read-only image, and `--kernel minimal`, which has them built in.
 */
for (const kernel of ['debian', 'minimal'] as const) {
  describe(`the ${kernel} guest kernel has what containers expect of a Linux host`, {
    timeout: 1_800_000,
  }, () => {
    const t = bundleTests(`kernel-${kernel}`);

    test('bridge, veth, macvlan, vxlan, iptables (legacy and nft), nftables, overlay, tun, loop, nested namespaces and cgroup controllers', async () => {
      const env = kernel === 'minimal' ? { HULL_STATE_DIR: await minimalKernelState() } : undefined;
      const b = await t.bundle(['sh', '/features.sh'], privilegedWithDevices);
      const rootfs = join(b.dir, 'rootfs');
      await rm(rootfs, { recursive: true });
      await unpackDebianRootfs(rootfs);
      await writeFile(join(rootfs, 'features.sh'), `uname -r\n${FEATURES}`);
      const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], { input: null, env });
      assert.equal(r.code, 0, r.stderr);
      // The minimal kernel's release has no Debian flavour suffix.
      assert.match(r.stdout.split('\n')[0]!, kernel === 'minimal' ? /^6\.1\.\d+$/ : /-amd64$/, r.stdout);
      for (const step of FEATURE_STEPS) {
        assert.match(r.stdout, new RegExp(`^ok ${step}$`, 'm'), r.stdout);
      }
    });
  });
}
