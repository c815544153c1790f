import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { privileged } from '../fixtures/bundle.js';
import { unpackDebianRootfs } from '../fixtures/debian-image.js';
import { minimalKernelState } from '../fixtures/minimal-kernel.js';
import { bundleTests, hull } from './harness.js';

/**
 * What a privileged container (Docker-in-Docker, a CNI plugin, a firewall) does with the
 * kernel, with Debian's own tools. Each step prints "ok NAME" only when it worked.
 */
const FEATURES = `
step() { name=$1; shift; if "$@" >/tmp/step.out 2>&1; then echo "ok $name"; else echo "FAILED $name: $(cat /tmp/step.out)"; fi; }
step bridge brctl addbr br-test
step veth ip link add veth-a type veth peer name veth-b
step macvlan ip link add mv0 link veth-a type macvlan mode bridge
step vxlan ip link add vx0 type vxlan id 42 dstport 4789 dev veth-a
step iptables-legacy iptables-legacy -L -n
step iptables-legacy-nat iptables-legacy -t nat -A POSTROUTING -o veth-a -j MASQUERADE
step conntrack test -e /proc/sys/net/netfilter/nf_conntrack_max
step iptables-nft iptables-nft -A INPUT -p tcp --dport 80 -j ACCEPT
step nft sh -c 'nft list ruleset | grep -q "dport 80"'
step overlay sh -c 'mkdir -p /tmp/o/l /tmp/o/u /tmp/o/w /tmp/o/m && mount -t overlay overlay -o lowerdir=/tmp/o/l,upperdir=/tmp/o/u,workdir=/tmp/o/w /tmp/o/m'
step tun ip tuntap add tun0 mode tun
step loop sh -c 'truncate -s 1M /tmp/disk && losetup -f --show /tmp/disk'
step namespaces unshare --user --map-root-user --pid --net --mount --ipc --uts --cgroup --fork true
step cgroup-controllers sh -c 'for c in cpu cpuset io memory pids; do grep -qw $c /sys/fs/cgroup/cgroup.controllers || exit 1; done'
`;

const STEPS = ['bridge', 'veth', 'macvlan', 'vxlan', 'iptables-legacy', 'iptables-legacy-nat', 'conntrack'];
const MORE_STEPS = ['iptables-nft', 'nft', 'overlay', 'tun', 'loop'];
/** What Docker-in-Docker and Kubernetes-in-container need besides: nested namespaces, cgroup v2 controllers. */
const NESTING_STEPS = ['namespaces', 'cgroup-controllers'];

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
      const b = await t.bundle(['sh', '/features.sh'], (spec) => {
        privileged(spec);
        spec.process!.env = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'];
        // As a privileged container gets them: every device allowed, the host's device nodes.
        spec.linux!.resources = { devices: [{ allow: true, access: 'rwm' }] };
        spec.linux!.devices = [
          { path: '/dev/net/tun', type: 'c', major: 10, minor: 200, fileMode: 0o666 },
          { path: '/dev/loop-control', type: 'c', major: 10, minor: 237, fileMode: 0o660 },
          { path: '/dev/loop0', type: 'b', major: 7, minor: 0, fileMode: 0o660 },
        ];
      });
      const rootfs = join(b.dir, 'rootfs');
      await rm(rootfs, { recursive: true });
      await unpackDebianRootfs(rootfs);
      await writeFile(join(rootfs, 'features.sh'), `uname -r\n${FEATURES}`);
      const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], { input: null, env });
      assert.equal(r.code, 0, r.stderr);
      // The minimal kernel's release has no Debian flavour suffix.
      assert.match(r.stdout.split('\n')[0]!, kernel === 'minimal' ? /^6\.1\.\d+$/ : /-amd64$/, r.stdout);
      for (const step of [...STEPS, ...MORE_STEPS, ...NESTING_STEPS]) {
        assert.match(r.stdout, new RegExp(`^ok ${step}$`, 'm'), r.stdout);
      }
    });
  });
}
