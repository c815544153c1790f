import assert from 'node:assert/strict';
import { test } from 'node:test';
import { archOfElfMachine, archProfile, hostArch, parseArch, requireArch } from './arch.js';
import { defaultCpuModel, parseCpuHelp } from './cpu-model.js';

test("an architecture is named by hull's, Debian's, the kernel's or OCI's word", () => {
  for (const name of ['arm64', 'aarch64', 'ARM64']) assert.equal(parseArch(name), 'arm64');
  for (const name of ['x86_64', 'amd64']) assert.equal(parseArch(name), 'x86_64');
  assert.equal(parseArch('riscv64'), undefined);
  assert.throws(() => requireArch('riscv64', '--arch'), /--arch: unknown architecture "riscv64": use x86_64/);
});

test('the host architecture comes from Node; an unsupported one is refused', () => {
  assert.equal(hostArch('x64'), 'x86_64');
  assert.equal(hostArch('arm64'), 'arm64');
  assert.throws(() => hostArch('s390x'), /does not run on s390x hosts/);
});

test('ELF machine numbers name the architecture of an executable', () => {
  assert.equal(archOfElfMachine(62), 'x86_64');
  assert.equal(archOfElfMachine(183), 'arm64');
  assert.equal(archOfElfMachine(40), undefined, '32-bit ARM is not run');
});

test('each architecture has its own QEMU, console, Debian names and default CPU', () => {
  assert.equal(archProfile('x86_64').qemuBinary, 'qemu-system-x86_64');
  assert.equal(archProfile('arm64').qemuBinary, 'qemu-system-aarch64');
  assert.equal(archProfile('arm64').debian, 'arm64');
  assert.equal(archProfile('x86_64').debian, 'amd64');
  assert.equal(defaultCpuModel('tcg'), 'max', 'x86 stays as it was');
  assert.equal(defaultCpuModel('tcg', 'arm64'), 'cortex-a72');
  assert.equal(defaultCpuModel('kvm', 'arm64'), 'host');
});

test("CPU model names are read from either QEMU's -cpu help", () => {
  const x86 =
    'Available CPUs:\nx86 486   (alias of 486-v1)\nx86 max  Enables all features\n\nRecognized CPUID flags:\n  3dnow 3dnowext 3dnowprefetch\n';
  assert.deepEqual(parseCpuHelp(x86), ['486', 'max']);
  const arm = 'Available CPUs:\n  a64fx\n  cortex-a72\n  max\n';
  assert.deepEqual(parseCpuHelp(arm), ['a64fx', 'cortex-a72', 'max']);
});
