import assert from 'node:assert/strict';
import { isIPv4 as netIsIPv4 } from 'node:net';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import {
  formatSubnet,
  gatewayOf,
  isIPv4,
  leasableAddresses,
  numberToIpv4,
  overlaps,
  parseIpv4Subnet,
} from './ipv4-subnet.js';

test("a subnet's gateway is its first address; sandboxes lease all but network, gateway, broadcast", () => {
  const subnet = parseIpv4Subnet('10.208.3.4/16');
  assert.equal(formatSubnet(subnet), '10.208.0.0/16');
  assert.equal(gatewayOf(subnet), '10.208.0.1');
  const { first, count } = leasableAddresses(subnet);
  assert.equal(numberToIpv4(first), '10.208.0.2');
  assert.equal(numberToIpv4(first + count - 1), '10.208.255.254');
  assert.equal(leasableAddresses(parseIpv4Subnet('192.168.7.0/30')).count, 1);
});

test('overlapping subnets are found, neighbours are not', () => {
  const serve = parseIpv4Subnet('10.208.0.0/16');
  assert.equal(overlaps(serve, parseIpv4Subnet('10.0.0.0/8')), true);
  assert.equal(overlaps(serve, parseIpv4Subnet('10.208.77.3/32')), true);
  assert.equal(overlaps(serve, parseIpv4Subnet('10.209.0.0/16')), false);
  assert.equal(overlaps(serve, parseIpv4Subnet('10.207.255.0/24')), false);
});

test('what is not a subnet is refused with one line', () => {
  for (const bad of ['10.208.0.0', '10.208.0.0/33', 'fd00::/64', '300.1.1.1/8']) {
    assert.throws(
      () => parseIpv4Subnet(bad),
      (err) => isHullError(err, 'ERR_CONFIG') && !err.message.includes('\n'),
    );
  }
});

test("an IPv4 address is what node:net's isIPv4 accepts", () => {
  const inputs = [
    '0.0.0.0',
    '10.208.0.1',
    '255.255.255.255',
    '192.168.001.1',
    '256.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
  ];
  inputs.push(
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1..3.4',
    '01.2.3.4',
    '1.2.3.04',
    '::1',
    '1.2.3.4/16',
    '',
    'a.b.c.d',
    '99.199.249.255',
  );
  for (let octet = 0; octet <= 300; octet += 7) inputs.push(`${octet}.${299 - octet}.0.${octet % 256}`);
  for (const input of inputs) assert.equal(isIPv4(input), netIsIPv4(input), JSON.stringify(input));
  assert.ok(inputs.filter((input) => isIPv4(input)).length > 20);
});
