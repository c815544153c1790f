import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { SetupNetworkRequestSchema } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { networkScript } from './network.js';

test('cards are renamed aside first, then named, addressed and routed; gateways after their links', () => {
  const request = create(SetupNetworkRequestSchema, {
    interfaces: [
      {
        name: 'eth1',
        mac: '02:00:00:00:00:0A',
        mtu: 1400,
        addresses: [
          { family: 'inet', address: '10.0.0.2', prefixLength: 24 },
          { family: 'inet6', address: 'fd00::2', prefixLength: 64 },
        ],
      },
      { name: 'eth0', mac: '02:00:00:00:00:0b', mtu: 0, addresses: [] },
    ],
    routes: [
      { family: 'inet6', destination: 'default', gateway: 'fd00::1', device: 'eth1', metric: 1024 },
      { family: 'inet', destination: '10.9.0.0/16', device: 'eth1', scope: 'link' },
    ],
    neighbors: [{ address: '10.0.0.1', mac: '02:00:00:00:00:01', device: 'eth1' }],
  });
  const cards = new Map([
    ['02:00:00:00:00:0a', 'eth0'],
    ['02:00:00:00:00:0b', 'eth1'],
  ]);
  assert.equal(
    networkScript(request, cards),
    [
      'link set dev eth0 down',
      'link set dev eth0 name hullnic0',
      'link set dev eth1 down',
      'link set dev eth1 name hullnic1',
      'link set dev hullnic0 name eth1',
      'link set dev eth1 mtu 1400',
      'addr flush dev eth1',
      'addr add 10.0.0.2/24 dev eth1',
      'addr add fd00::2/64 dev eth1 nodad',
      'link set dev eth1 up',
      'link set dev hullnic1 name eth0',
      'addr flush dev eth0',
      'link set dev eth0 up',
      'route replace 10.9.0.0/16 dev eth1 scope link',
      'route replace ::/0 via fd00::1 dev eth1 metric 1024',
      'neigh replace 10.0.0.1 lladdr 02:00:00:00:00:01 dev eth1 nud permanent',
      '',
    ].join('\n'),
  );
});

test('a value that would break the script is refused', () => {
  const request = create(SetupNetworkRequestSchema, {
    interfaces: [{ name: 'eth0\nlink del lo', mac: '02:00:00:00:00:0a', mtu: 0, addresses: [] }],
  });
  assert.throws(() => networkScript(request, new Map([['02:00:00:00:00:0a', 'eth0']])), /unusable value/);
});

test("a clone's card, found by its template's MAC, is given the interface's own", () => {
  const request = create(SetupNetworkRequestSchema, {
    interfaces: [
      { name: 'eth0', mac: '0a:58:0a:58:00:07', cardMac: '02:68:75:6c:6c:00', mtu: 0, addresses: [] },
    ],
  });
  assert.equal(
    networkScript(request, new Map([['02:68:75:6c:6c:00', 'eth0']])),
    [
      'link set dev eth0 down',
      'link set dev eth0 name hullnic0',
      'link set dev hullnic0 address 0a:58:0a:58:00:07',
      'link set dev hullnic0 name eth0',
      'addr flush dev eth0',
      'link set dev eth0 up',
      '',
    ].join('\n'),
  );
});
