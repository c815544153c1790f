import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseNetwork } from './discover.js';

const veth = (name: string, mac: string, extra: object = {}) => ({
  ifname: name,
  address: mac,
  mtu: 1450,
  link_type: 'ether',
  linkinfo: { info_kind: 'veth' },
  ...extra,
});
const lo = { ifname: 'lo', address: '00:00:00:00:00:00', mtu: 65536, link_type: 'loopback' };

test('a CNI namespace: the veth, its global addresses, the routes the kernel did not make', () => {
  const network = parseNetwork(
    '/run/netns/cni-1',
    [
      lo,
      veth('eth0', '0a:58:0a:f4:00:05', {
        addr_info: [
          { family: 'inet', local: '10.244.0.5', prefixlen: 24, scope: 'global' },
          { family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global' },
          { family: 'inet6', local: 'fe80::858:aff:fef4:5', prefixlen: 64, scope: 'link' },
        ],
      }),
    ],
    [
      { dst: 'default', gateway: '10.244.0.1', dev: 'eth0', flags: [] },
      { dst: '10.244.0.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '10.244.0.5' },
      { type: 'local', dst: '10.244.0.5', dev: 'eth0', table: 'local', protocol: 'kernel' },
      { dst: 'default', gateway: 'fd00::1', dev: 'eth0', metric: 1024, pref: 'medium' },
      { dst: 'fe80::/64', dev: 'eth0', protocol: 'kernel', metric: 256, pref: 'medium' },
      { dst: '10.96.0.0/12', gateway: '10.244.0.1', dev: 'eth0', flags: ['onlink'] },
    ],
    [
      { dst: '10.244.0.1', dev: 'eth0', lladdr: '0a:58:0a:f4:00:01', state: ['PERMANENT'] },
      { dst: '10.244.0.7', dev: 'eth0', lladdr: '0a:58:0a:f4:00:07', state: ['REACHABLE'] },
    ],
  );
  assert.deepEqual(network.interfaces, [
    {
      name: 'eth0',
      mac: '0a:58:0a:f4:00:05',
      mtu: 1450,
      tap: 'tap0_hull',
      addresses: [
        { family: 'inet', address: '10.244.0.5', prefixLength: 24 },
        { family: 'inet6', address: 'fd00::5', prefixLength: 64 },
      ],
    },
  ]);
  assert.deepEqual(network.routes, [
    { family: 'inet', destination: 'default', device: 'eth0', gateway: '10.244.0.1' },
    { family: 'inet6', destination: 'default', device: 'eth0', gateway: 'fd00::1', metric: 1024 },
    { family: 'inet', destination: '10.96.0.0/12', device: 'eth0', gateway: '10.244.0.1', onlink: true },
  ]);
  assert.deepEqual(network.neighbors, [{ address: '10.244.0.1', mac: '0a:58:0a:f4:00:01', device: 'eth0' }]);
});

test('a namespace with only lo gives the VM no card', () => {
  assert.deepEqual(parseNetwork('/proc/1/ns/net', [lo], [], []).interfaces, []);
});

test('interfaces that cannot be redirected, too many, or a namespace another VM has are refused', () => {
  const refused = (links: object[], pattern: RegExp) =>
    assert.throws(
      () => parseNetwork('/run/netns/x', links as never, [], []),
      (err) => isHullError(err, 'ERR_NETWORK') && pattern.test(err.message),
    );
  refused(
    [lo, { ifname: 'tun0', mtu: 1500, link_type: 'none', linkinfo: { info_kind: 'tun' } }],
    /tun0 \(tun\)/,
  );
  refused([veth('br0', '02:00:00:00:00:01', { linkinfo: { info_kind: 'bridge' } })], /br0 \(bridge\)/);
  refused(
    [1, 2, 3, 4, 5].map((n) => veth(`eth${n}`, `02:00:00:00:00:0${n}`)),
    /has 5 interfaces; a hull VM takes at most 4/,
  );
  refused(
    [veth('eth0', '02:00:00:00:00:01'), veth('tap0_hull', '02:00:00:00:00:02')],
    /already given to another hull VM/,
  );
});
