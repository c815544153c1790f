import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../../errors.js';
import { parseGpa2hva } from './boot-id.js';

test("gpa2hva's answer is taken only for that address in the guest's RAM", () => {
  const gpa = 0x4095cf8n;
  assert.equal(
    parseGpa2hva('Host virtual address for 0x4095cf8 (ram) is 0x7f1234095cf8\r\n', gpa),
    0x7f1234095cf8n,
  );
  // QEMU 7.2's own answers (asked of a paused microvm with 64 MiB of RAM), then forged ones.
  const refused = [
    'No memory is mapped at address 0x4095cf8\r\n',
    'Memory at address 0xfeb00000 is not RAM\r\n',
    'gpa2hva: extraneous characters at the end of line\r\nTry "help gpa2hva" for more information\r\n',
    // Mapped, but the firmware's ROM, not the guest's RAM.
    'Host virtual address for 0x4095cf8 (pc.bios) is 0x7fb6e060f000\r\n',
    'Host virtual address for 0x4095cf0 (ram) is 0x7f1234095cf0\r\n',
    'Host virtual address for 0x4095cf8 (ram) is 0x0\r\n',
    'Host virtual address for 0x4095cf8 (ram) is 0xffffffffff5000\r\n',
    'Host virtual address for 0x4095cf8 (ram) is 0x7f1234095cf8\r\nand more\r\n',
    `Host virtual address for 0x4095cf8 (ram) is 0x7f12${'3'.repeat(300)}\r\n`,
    '',
    42,
  ];
  for (const reply of refused) {
    assert.throws(
      () => parseGpa2hva(reply, gpa),
      (err) => isHullError(err, 'ERR_BOOT_ID'),
      String(reply),
    );
  }
});
