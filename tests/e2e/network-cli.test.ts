import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Spec } from '../../src/oci/spec.js';
import { TestNetns } from '../fixtures/netns.js';
import { fetchFromHost } from '../fixtures/web-server.js';
import {
  bundleTests,
  HULL_COMMAND,
  hull,
  hullKeepingOutput,
  processExit,
  runCommand,
  startHull,
} from './harness.js';

/** The container's network namespace, named by path, as podman and CNI give it. */
const joining = (netns: string) => (spec: Spec) => {
  spec.linux!.namespaces = spec.linux!.namespaces!.map((ns) =>
    ns.type === 'network' ? { type: 'network', path: netns } : ns,
  );
};

/** What hull adds to a namespace while a VM has its network: taps and ingress qdiscs. */
async function hullTraces(netns: TestNetns): Promise<string> {
  return (await netns.exec('ip -o link show; tc qdisc show'))
    .split('\n')
    .filter((line) => /_hull|ingress/.test(line))
    .join('\n');
}

const SERVE = [
  'sh',
  '-c',
  'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www',
];

describe('networking: the VM takes over the container network namespace', { timeout: 600_000 }, () => {
  const t = bundleTests('network-cli');
  let netns: TestNetns;
  before(async () => {
    netns = await TestNetns.create('c', '10.231.20');
  });
  after(() => netns?.remove());

  test("the container has the namespace's interface, addresses, routes and neighbours, and is reached from the host", async () => {
    const mac = (await netns.exec('cat /sys/class/net/eth0/address')).trim();
    const show = await t.bundle(
      [
        'sh',
        '-c',
        'cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; ip addr show eth0; ip route; ip -6 route; ip neigh',
      ],
      joining(netns.path),
    );
    const r = await hull(['--root', t.root, 'run', '--bundle', show.dir, show.id], { input: null });
    assert.equal(r.code, 0, r.stderr);
    const [guestMac, mtu] = r.stdout.split('\n');
    assert.equal(guestMac, mac, "the guest's card has the interface's MAC");
    assert.equal(mtu, '1400');
    assert.match(r.stdout, /inet 10\.231\.20\.2\/24/);
    assert.match(r.stdout, /inet6 fd00:231::2\/64/);
    assert.match(r.stdout, /default via 10\.231\.20\.1 dev eth0/);
    assert.match(r.stdout, /10\.231\.20\.9 dev eth0 lladdr 02:00:00:00:00:09 .*PERMANENT/);
    assert.equal(await hullTraces(netns), '', 'taps and filters are gone with the VM');

    const server = await t.bundle(SERVE, (spec) => {
      joining(netns.path)(spec);
      spec.hostname = 'served-from-hull';
      spec.root!.readonly = false;
    });
    const run = startHull(['--root', t.root, 'run', '--bundle', server.dir, server.id], { input: null });
    try {
      assert.equal(await fetchFromHost(`http://${netns.ip}/`), 'served-from-hull\n');
      assert.equal(await fetchFromHost('http://[fd00:231::2]/'), 'served-from-hull\n', 'over IPv6 too');
      assert.match(await hullTraces(netns), /tap0_hull/);
    } finally {
      await hull(['--root', t.root, 'kill', server.id, 'KILL']);
      await run.result;
    }
    assert.equal(await hullTraces(netns), '', "the client's namespace is as it made it");
  });

  test('a hook given the monitor pid fills a namespace of its own, as Docker does', async () => {
    const hostEnd = `hvk${process.pid % 10000}`;
    const hook = join(t.scratch, 'network-hook.sh');
    // libnetwork-setkey's part: move a veth into /proc/<state pid>/ns/net and configure it.
    await writeFile(
      hook,
      `#!/bin/sh
pid=$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p')
ip link add ${hostEnd} type veth peer name eth0 netns "$pid" || exit 1
ip addr add 10.231.21.1/24 dev ${hostEnd} && ip link set ${hostEnd} up
nsenter --net=/proc/$pid/ns/net sh -c 'ip addr add 10.231.21.2/24 dev eth0 && ip link set eth0 up'
`,
      { mode: 0o755 },
    );
    const server = await t.bundle(SERVE, (spec) => {
      spec.hostname = 'hooked';
      spec.root!.readonly = false;
      spec.hooks = { prestart: [{ path: hook }] };
    });
    const created = await hullKeepingOutput(t.root, ['create', '--bundle', server.dir, server.id]);
    assert.equal(created.code, 0, created.stderr);
    try {
      assert.equal((await hull(['--root', t.root, 'start', server.id])).code, 0);
      assert.equal(await fetchFromHost('http://10.231.21.2/'), 'hooked\n');
    } finally {
      await hull(['--root', t.root, 'kill', server.id, 'KILL']);
      for (let i = 0; i < 100; i++) {
        if ((await hull(['--root', t.root, 'delete', server.id])).code === 0) break;
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    const veth = await runCommand('ip', ['link', 'show', hostEnd]);
    assert.notEqual(veth.code, 0, "the veth went with the monitor's namespace");
  });

  test("the OCI command runs with an empty environment, as CRI-O's conmon starts it", async () => {
    // CRI-O gives a handler's conmon, and so hull, only its monitor_env: no PATH at all.
    const kept = process.env.HULL_STATE_DIR ? [`HULL_STATE_DIR=${process.env.HULL_STATE_DIR}`] : [];
    const bare = (args: string[]) =>
      runCommand('env', ['-i', ...kept, HULL_COMMAND, '--root', t.root, ...args]);
    const b = await t.bundle(['sh', '-c', 'echo started; exec sleep 600'], joining(netns.path));
    const out = join(t.scratch, 'bare.out');
    const pidFile = join(t.scratch, 'bare.pid');
    const created = await runCommand('sh', [
      '-c',
      `env -i ${kept.join(' ')} "$0" --root ${t.root} create --bundle ${b.dir} --pid-file ${pidFile} ${b.id} > ${out} 2>&1 < /dev/null || { cat ${out} >&2; exit 1; }`,
      HULL_COMMAND,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const pid = Number(await readFile(pidFile, 'utf8'));
    try {
      assert.equal((await bare(['start', b.id])).code, 0);
      const mac = (await netns.exec('cat /sys/class/net/eth0/address')).trim();
      const exec = await bare(['exec', b.id, 'cat', '/sys/class/net/eth0/address']);
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout.trim(), mac, "the VM took over the namespace's interface");
      assert.match(await hullTraces(netns), /tap0_hull/);
      assert.equal((await bare(['kill', b.id, 'KILL'])).code, 0);
      await processExit(pid);
    } finally {
      const deleted = await bare(['delete', '--force', b.id]);
      assert.equal(deleted.code, 0, deleted.stderr);
    }
    assert.match(await readFile(out, 'utf8'), /started/);
    assert.equal(await hullTraces(netns), '', "the client's namespace is as it made it");
  });

  test('bad network input: one line, non-zero exit, nothing left', async () => {
    const tryRun = async (netnsPath: string) => {
      const b = await t.bundle(['true'], joining(netnsPath));
      return hull(['--root', t.root, 'run', '--bundle', b.dir, b.id], { input: null });
    };
    const oneLine = (r: { code: number | null; stderr: string }, pattern: RegExp) => {
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    };
    oneLine(await tryRun('/run/netns/hull-no-such-namespace'), /hull-no-such-namespace .*does not exist/);
    const notNetns = join(t.scratch, 'not-a-namespace');
    await writeFile(notNetns, '');
    oneLine(await tryRun(notNetns), /not-a-namespace .* is not one: give the path of a network namespace/);
    await netns.exec('ip tuntap add hulltun0 mode tun');
    try {
      oneLine(await tryRun(netns.path), /interface hulltun0 \(tun\) .* cannot be given to a VM/);
    } finally {
      await netns.exec('ip link del hulltun0');
    }
    assert.equal(await hullTraces(netns), '');
  });

  test('every interface of the namespace becomes a card of the VM, each reached from the host', async () => {
    // A second interface, as a pod with two networks (Multus) or podman --network a,b has.
    const hostEnd = `hv2${process.pid % 10000}`;
    await runCommand('sh', [
      '-c',
      [
        `ip link add ${hostEnd} type veth peer name eth1 netns ${netns.name}`,
        `ip addr add 10.231.22.1/24 dev ${hostEnd}`,
        `ip link set ${hostEnd} up`,
      ].join(' && '),
    ]);
    try {
      await netns.exec('ip addr add 10.231.22.2/24 dev eth1 && ip link set eth1 up');
      const macs = (await netns.exec('cat /sys/class/net/eth0/address /sys/class/net/eth1/address')).trim();
      const server = await t.bundle(
        [
          'sh',
          '-c',
          'cat /sys/class/net/eth0/address /sys/class/net/eth1/address; mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www',
        ],
        (spec) => {
          joining(netns.path)(spec);
          spec.hostname = 'two-cards';
          spec.root!.readonly = false;
        },
      );
      const run = startHull(['--root', t.root, 'run', '--bundle', server.dir, server.id], { input: null });
      try {
        assert.equal(await fetchFromHost(`http://${netns.ip}/`), 'two-cards\n', 'through eth0');
        assert.equal(await fetchFromHost('http://10.231.22.2/'), 'two-cards\n', 'through eth1');
        await run.waitForOutput(macs);
        assert.match(await hullTraces(netns), /tap1_hull/);
      } finally {
        await hull(['--root', t.root, 'kill', server.id, 'KILL']);
        await run.result;
      }
      assert.equal(await hullTraces(netns), '', 'both taps and their filters are gone');
    } finally {
      await runCommand('ip', ['link', 'del', hostEnd]);
    }
  });
});
