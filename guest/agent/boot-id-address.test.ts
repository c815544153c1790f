import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootIdAddressOf } from './boot-id-address.js';

// As a Debian 6.1 amd64 guest of hull's shows them to root (KASLR on).
const KALLSYMS = [
  'ffffffff81000000 T _stext',
  'ffffffff82a00000 D _sdata',
  'ffffffff84095cf0 b sysctl_bootid',
  'ffffffffc0201000 t sysctl_bootid\t[evil]',
].join('\n');
const IOMEM = [
  '00000000-00000fff : Reserved',
  '00100000-1fffffff : System RAM',
  '  01000000-01e01d31 : Kernel code',
  '  02000000-028eafff : Kernel rodata',
  '  02a00000-02c4897f : Kernel data',
  '  03310000-043fffff : Kernel bss',
].join('\n');

test("the boot id's guest-physical address is Kernel data's start plus its offset from _sdata", () => {
  assert.equal(bootIdAddressOf(KALLSYMS, IOMEM), 0x04095cf0n);
});

test('a symbol is found on the first or last line, and only as a whole name of the core kernel', () => {
  const last = 'ffffffff82a00000 D _sdata\nffffffff84095cf0 b sysctl_bootid';
  assert.equal(bootIdAddressOf(last, IOMEM), 0x04095cf0n);
  const lookalikes = [
    'ffffffff82a00000 D _sdata',
    'ffffffff84000000 b x_sysctl_bootid',
    'ffffffff84000000 b two sysctl_bootid',
    'ffffffff84000000 b sysctl_bootid [mod]',
    'ffffffff84000000 bb sysctl_bootid',
  ].join('\n');
  assert.equal(bootIdAddressOf(lookalikes, IOMEM), undefined);
});

test('no address where the guest cannot tell', () => {
  // A kernel without data symbols (no CONFIG_KALLSYMS_ALL), or addresses hidden (kptr_restrict).
  assert.equal(bootIdAddressOf('ffffffff81000000 T _stext\nffffffff82a00000 D _sdata', IOMEM), undefined);
  assert.equal(
    bootIdAddressOf(KALLSYMS.replaceAll(/^ffffffff[0-9a-f]{8}/gm, '0000000000000000'), IOMEM),
    undefined,
  );
  assert.equal(bootIdAddressOf(KALLSYMS, IOMEM.replace(/ {2}02a00000/, '  00000000')), undefined);
  assert.equal(bootIdAddressOf(KALLSYMS, '00100000-1fffffff : System RAM'), undefined);
  assert.equal(bootIdAddressOf('', ''), undefined);
});
