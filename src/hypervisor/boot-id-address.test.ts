import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootIdAddressText, checkedBootIdAddress, parseBootIdAddressText } from './boot-id-address.js';

test('an address the guest reports is kept only if it can be guest-physical', () => {
  assert.equal(checkedBootIdAddress(0x4095cf0n), 0x4095cf0n);
  assert.equal(checkedBootIdAddress(0n), undefined, 'an older agent, or a kernel that cannot tell');
  assert.equal(checkedBootIdAddress(2n ** 52n), undefined);
  assert.equal(checkedBootIdAddress(2n ** 64n - 1n), undefined);
  assert.equal(checkedBootIdAddress(-8n), undefined);
});

test('a recorded address reads back as the address that was kept', () => {
  for (const address of [0x4095cf0n, 1n, 2n ** 52n - 16n]) {
    assert.equal(parseBootIdAddressText(bootIdAddressText(address)), address);
  }
});

test('a recorded address is read back only in the form hull writes', () => {
  assert.equal(parseBootIdAddressText('0x4095cf0'), 0x4095cf0n);
  for (const bad of [
    undefined,
    123,
    '',
    '0x',
    '4095cf0',
    '0X4095CF0',
    '0x4095cf0 ',
    '0x-1',
    '0x1'.padEnd(20, '0'),
  ]) {
    assert.equal(parseBootIdAddressText(bad), undefined, String(bad));
  }
});
